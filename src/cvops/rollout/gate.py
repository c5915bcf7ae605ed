"""The A/B gate: compare the challenger with the champion, then promote it or roll it back.

Evidence comes from a held-out set (:mod:`cvops.rollout.heldout`) and from frames replayed
through the running canary router (:mod:`cvops.rollout.replay`); the rule is
:func:`cvops.rollout.decision.decide`. Then, unless told only to decide:

- promote: (cluster: canary to 100 percent), the ``champion`` alias moves to the challenger
  (which gives up its ``challenger`` alias), and the champion alone replaces the canary;
- roll back: (cluster: canary to 0 percent), the ``challenger`` alias is removed, and the
  champion alone replaces the canary.

The alias event carries the decision's evidence (every check, the intervals, the path of the
full evidence file), so ``cvops registry history`` shows why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvops.errors import InvalidInputError, RegistryNotFoundError, RolloutError
from cvops.evaluation.detection import read_coco_ground_truth
from cvops.evaluation.model_eval import resolve_ground_truth
from cvops.offline import default_state_dir
from cvops.registry.events import AliasEvent
from cvops.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry
from cvops.rollout.decision import Check, GateConfig, GateInputs, Outcome, decide
from cvops.rollout.deploy import alias_versions, deploy_champion, set_cluster_split
from cvops.rollout.heldout import HeldoutComparison, compare_heldout
from cvops.rollout.local import CanaryDeployment, is_running, read_state, write_state
from cvops.rollout.manifest import CustomObjectsApi
from cvops.rollout.replay import (
    LiveComparison,
    ReplayConfig,
    check_reachable,
    read_frames,
    read_router_stats,
    replay_frames,
    summarize_replay,
    wait_for_shadow,
)
from cvops.rollout.report import write_evidence

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str], None]
_HELDOUT_KEYS = ("image_count", "champion", "challenger", "map_50_95_delta", "recall_50_delta")
_LIVE_KEYS = (
    "frames", "requests", "errors", "p99_ms", "p99_delta_ms", "throughput_per_s", "score_ks",
    "mean_score_shift", "shadow",
)  # fmt: skip
MAX_EVENT_CHARS = 90_000  # MLflow keeps registered-model tag values up to 100,000 characters


@dataclass(frozen=True, slots=True)
class AbGateDecision:
    """What the gate decided and did.

    Attributes:
        outcome: ``promote`` or ``rollback``.
        checks: The decision table.
        champion_version: The champion compared against.
        challenger_version: The challenger judged.
        evidence_file: ``evidence.json`` with everything measured.
        summary_file: ``summary.html``.
        events: Alias events recorded in the registry (empty when only deciding).
        deployment: The deployment after acting (None when none was changed).
    """

    outcome: Outcome
    checks: tuple[Check, ...]
    champion_version: int
    challenger_version: int
    evidence_file: Path
    summary_file: Path
    events: tuple[AliasEvent, ...]
    deployment: CanaryDeployment | None


def run_ab_gate(
    model_name: str,
    tracking_uri: str | None,
    heldout_data: Path,
    replay_source: str,
    config: GateConfig,
    out_dir: Path,
    *,
    replay: ReplayConfig | None = None,
    router_url: str | None = None,
    state_dir: Path | None = None,
    who: str = "cvops-ab-gate",
    should_act: bool = True,
    kube_api: CustomObjectsApi | None = None,
    on_progress: ProgressCallback | None = None,
) -> AbGateDecision:
    """Compare challenger and champion, decide, write the evidence, then promote or roll back.

    Args:
        model_name: Registered model name; its ``champion`` and ``challenger`` aliases are compared.
        tracking_uri: MLflow tracking URI; None: the embedded registry under ``state_dir``.
        heldout_data: COCO ground truth file, or a dataset folder with ``annotations_coco_val.json``.
        replay_source: Video file or image folder whose frames are replayed through the router.
        config: The decision rule's thresholds and bootstrap settings.
        out_dir: Folder for ``evidence.json`` and ``summary.html``.
        replay: Frames, rate and concurrency of the replay.
        router_url: The canary router; default: the URL of the model's local deployment. For a
            cluster, the InferenceService's URL.
        state_dir: Folder of the registry cache and deployment state; default: ``CVOPS_STATE_DIR``.
        who: Recorded as the decider in the registry.
        should_act: False: decide and write the evidence only (no alias or traffic change).
        kube_api: ``CustomObjectsApi`` for a cluster deployment; None: from the kubeconfig.
        on_progress: Called with a short message before each step.

    Raises:
        RegistryNotFoundError: When the model, its champion or its challenger alias is missing.
        RolloutError: When no canary runs, or it serves other versions than the aliases name.
        RemoteDetectorError: When the router is not reachable.
        InvalidInputError: When the held-out set is missing or empty, or the replay source has no frame.
    """
    notify = on_progress or (lambda _: None)
    replay = replay or ReplayConfig()
    state_dir = state_dir or default_state_dir()
    registry = ModelRegistry(tracking_uri, state_dir=state_dir)
    aliases = alias_versions(registry, model_name)
    _check_heldout(heldout_data)  # fail on bad input before any long step
    deployment = read_state(state_dir, model_name)
    url = router_url or _router_url(deployment, model_name, aliases)
    check_reachable(url)
    frames = read_frames(replay_source, replay)
    champion_dir = registry.resolve(f"models:/{model_name}@{CHAMPION}")
    challenger_dir = registry.resolve(f"models:/{model_name}@{CHALLENGER}")
    heldout = compare_heldout(
        champion_dir, challenger_dir, heldout_data, config.n_resamples, config.confidence, config.seed, notify
    )
    live = _replay(url, frames, replay, config, notify)
    outcome, checks = decide(_inputs(heldout, live), config)
    notify(f"decision: {outcome} ({sum(c.is_passed for c in checks)}/{len(checks)} checks passed)")

    evidence = {
        "model_name": model_name,
        "decision": outcome,
        "at": datetime.now(UTC).isoformat(),
        "who": who,
        "champion_version": aliases[CHAMPION],
        "challenger_version": aliases[CHALLENGER],
        "router_url": url,
        "heldout_data": str(heldout_data),
        "replay_source": replay_source,
        "config": config.to_dict(),
        "replay": asdict(replay),
        "checks": [asdict(c) for c in checks],
        "heldout": heldout.to_dict(),
        "live": live.to_dict(),
        "actions": [],
    }
    evidence_file, summary_file = write_evidence(out_dir, evidence)
    if not should_act:
        return AbGateDecision(
            outcome, checks, aliases[CHAMPION], aliases[CHALLENGER], evidence_file, summary_file, (), None
        )
    events, deployment, actions = _act(
        registry, model_name, outcome, evidence, evidence_file, deployment, state_dir, who, kube_api, notify
    )
    evidence["actions"] = actions
    write_evidence(out_dir, evidence)
    return AbGateDecision(
        outcome,
        checks,
        aliases[CHAMPION],
        aliases[CHALLENGER],
        evidence_file,
        summary_file,
        events,
        deployment,
    )


def _check_heldout(dataset: Path) -> None:
    gt_path = resolve_ground_truth(dataset)
    if not read_coco_ground_truth(gt_path)["images"]:
        raise InvalidInputError(f"held-out set {gt_path}: expected at least one image, got none")


def _router_url(deployment: CanaryDeployment | None, model_name: str, aliases: dict[str, int]) -> str:
    if deployment is None or deployment.mode != "canary":
        raise RolloutError(f"{model_name}: no canary deployed; run `cvops rollout deploy {model_name}` first")
    if deployment.target == "cluster" or deployment.url is None:
        raise RolloutError(
            f"{model_name}: deployed on a cluster; pass the InferenceService's URL as router_url"
        )
    if not is_running(deployment):
        raise RolloutError(
            f"{model_name}: the canary router (pid {deployment.pid}) is not running; deploy it again"
        )
    served = (deployment.champion_version, deployment.challenger_version)
    if served != (aliases[CHAMPION], aliases[CHALLENGER]):
        raise RolloutError(
            f"{model_name}: the canary serves v{served[0]}/v{served[1]} but the registry's champion/"
            f"challenger are v{aliases[CHAMPION]}/v{aliases[CHALLENGER]}; deploy again"
        )
    return deployment.url


def _replay(
    url: str, frames: list[bytes], replay: ReplayConfig, config: GateConfig, notify: ProgressCallback
) -> LiveComparison:
    before = read_router_stats(url)["shadow"]["frames"]
    notify(f"replaying {len(frames)} frames through {url}")
    records, wall_s = replay_frames(url, frames, replay)
    champion_answers = sum(1 for r in records if r.variant == CHAMPION and r.status == 200)
    stats = read_router_stats(url)
    expected = round(champion_answers * stats["config"]["shadowTrafficPercent"] / 100)
    if expected:
        stats = wait_for_shadow(url, before, expected, timeout_s=replay.timeout_s)
    shadow = {"frames": stats["shadow"]["frames"] - before, "mean": stats["shadow"]["mean"]}
    return summarize_replay(records, wall_s, shadow, config.n_resamples, config.confidence, config.seed)


def _inputs(heldout: HeldoutComparison, live: LiveComparison) -> GateInputs:
    shadow_mean = live.shadow.get("mean") or {}
    return GateInputs(
        map_delta=heldout.map_delta,
        recall_delta=heldout.recall_delta,
        class_deltas=tuple((c.class_name, c.gt_count, c.delta) for c in heldout.class_changes),
        challenger_p99_ms=live.p99_ms.get(CHALLENGER),
        p99_delta_ms=live.p99_delta_ms,
        requests=live.requests,
        challenger_error_rate=live.challenger_error_rate,
        score_ks=live.score_ks,
        shadow_agreement=shadow_mean.get("matched_fraction") if live.shadow.get("frames") else None,
    )


def event_evidence(evidence: dict[str, Any], evidence_file: Path) -> dict[str, Any]:
    """Return the evidence recorded with the alias event: every check and interval, plus the file's path.

    Per-class rows are kept for the classes that got worse; all of them are in the file.
    """
    heldout, live = evidence["heldout"], evidence["live"]
    recorded = {
        "decision": evidence["decision"],
        "evidence_file": str(evidence_file),
        "champion_version": evidence["champion_version"],
        "challenger_version": evidence["challenger_version"],
        "checks": evidence["checks"],
        "config": evidence["config"],
        "heldout": {key: heldout[key] for key in _HELDOUT_KEYS},
        "per_class_worse": [c for c in heldout["per_class"] if (c["delta"] or 0.0) < 0],
        "live": {key: live[key] for key in _LIVE_KEYS},
    }
    if len(json.dumps(recorded, default=str)) > MAX_EVENT_CHARS:
        recorded["per_class_worse"] = recorded["per_class_worse"][:20]
    return recorded


def _act(
    registry: ModelRegistry,
    model_name: str,
    outcome: Outcome,
    evidence: dict[str, Any],
    evidence_file: Path,
    deployment: CanaryDeployment | None,
    state_dir: Path,
    who: str,
    kube_api: CustomObjectsApi | None,
    notify: ProgressCallback,
) -> tuple[tuple[AliasEvent, ...], CanaryDeployment | None, list[str]]:
    """Move traffic and aliases for the outcome; return the events, the new deployment and the steps."""
    actions: list[str] = []
    recorded = event_evidence(evidence, evidence_file)
    challenger = int(evidence["challenger_version"])
    failed = [c["name"] for c in evidence["checks"] if not c["is_passed"]]
    is_cluster = deployment is not None and deployment.target == "cluster" and deployment.mode == "canary"
    if is_cluster and deployment is not None:
        percent = 100 if outcome == "promote" else 0
        notify(f"cluster: canaryTrafficPercent -> {percent}")
        write_state(state_dir, set_cluster_split(deployment, registry, percent, kube_api))
        actions.append(f"cluster canaryTrafficPercent {percent}")
    if outcome == "promote":
        why = f"A/B gate: challenger v{challenger} passed every check"
        notify(f"registry: {model_name}@champion -> v{challenger}")
        registry.promote(model_name, challenger, who, why, recorded)
        actions.append(f"champion alias -> v{challenger} (challenger alias retired)")
    else:
        why = f"A/B gate: challenger v{challenger} failed {', '.join(failed)}"
        notify(f"registry: removing {model_name}@challenger (v{challenger})")
        retire_alias(registry, model_name, CHALLENGER, who, why, recorded)
        actions.append(f"challenger alias v{challenger} removed")
    new_deployment = None
    if deployment is not None and deployment.mode == "canary":
        new_deployment = deploy_champion(
            model_name, registry.tracking_uri, deployment.target, state_dir=state_dir,
            port=deployment.port, kube_api=kube_api, on_progress=notify,
        )  # fmt: skip
        actions.append(f"{deployment.target}: champion v{new_deployment.champion_version} serves all traffic")
    history = registry.history(model_name)
    events = tuple(e for e in history if e.evidence.get("evidence_file") == str(evidence_file))
    return events, new_deployment, actions


def retire_alias(
    registry: ModelRegistry, model_name: str, alias: str, who: str, why: str, evidence: dict[str, Any]
) -> AliasEvent:
    """Remove an alias and record a ``retire`` event carrying the evidence.

    Raises:
        RegistryNotFoundError: When the model does not exist.
        RolloutError: When the alias is not set.
    """
    try:
        return registry.retire(model_name, alias, who, why, evidence)
    except RegistryNotFoundError as error:
        raise RolloutError(f"{model_name}: no {alias!r} alias to remove") from error
