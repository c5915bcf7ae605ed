"""Rollout steps of the loop: canary the challenger, let the A/B gate promote or roll it back.

Before the first champion there is nothing to canary against: the challenger is judged on the
held-out set alone (``first_model_min_map``), promoted and served by itself, or retired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvops.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry

FIRST_MODEL_MIN_MAP = 0.05


@dataclass(frozen=True, slots=True)
class RolloutOutcome:
    """What the gate decided and where its evidence is.

    Attributes:
        decision: ``promote`` or ``rollback``.
        champion_version: The champion after the decision (None when there still is none).
        challenger_version: The version judged.
        evidence_file: ``evidence.json``.
        summary_file: ``summary.html``.
    """

    decision: str
    champion_version: int | None
    challenger_version: int
    evidence_file: Path
    summary_file: Path


def deploy_challenger(
    model_name: str, tracking_uri: str | None, canary_percent: int, target: str, state_dir: Path | None = None
) -> str:
    """Start (or update) the canary of the challenger next to the champion; return where it serves.

    Before the first champion nothing is deployed here (the gate deploys the first champion).
    """
    from cvops.errors import RegistryNotFoundError
    from cvops.rollout.deploy import deploy_canary

    try:
        aliases = ModelRegistry(tracking_uri, state_dir=state_dir).aliases(model_name)
    except RegistryNotFoundError:
        aliases = {}
    if CHAMPION not in aliases:
        return "none: no champion yet, the challenger is judged on the held-out set alone"
    deployment = deploy_canary(
        model_name,
        tracking_uri,
        canary_percent,
        "cluster" if target == "cluster" else "local",
        state_dir=state_dir,
    )
    return deployment.url or f"cluster: {model_name}"


def gate_challenger(
    model_name: str,
    tracking_uri: str | None,
    heldout: Path,
    replay_source: str,
    out_dir: Path,
    replay_frames: int = 60,
    target: str = "local",
    state_dir: Path | None = None,
) -> RolloutOutcome:
    """Judge the challenger (A/B against the champion, or alone before any) and act on the decision."""
    from cvops.rollout.decision import GateConfig
    from cvops.rollout.gate import run_ab_gate
    from cvops.rollout.replay import ReplayConfig

    registry = ModelRegistry(tracking_uri, state_dir=state_dir)
    aliases = registry.aliases(model_name)
    if CHAMPION not in aliases:
        return _judge_first_model(registry, model_name, heldout, out_dir, target, state_dir)
    decision = run_ab_gate(
        model_name,
        tracking_uri,
        heldout,
        replay_source,
        GateConfig(),
        out_dir,
        replay=ReplayConfig(max_frames=replay_frames),
        state_dir=state_dir,
    )
    after = registry.aliases(model_name)
    return RolloutOutcome(
        decision.outcome,
        after.get(CHAMPION),
        decision.challenger_version,
        decision.evidence_file,
        decision.summary_file,
    )


def _judge_first_model(
    registry: ModelRegistry,
    model_name: str,
    heldout: Path,
    out_dir: Path,
    target: str,
    state_dir: Path | None,
) -> RolloutOutcome:
    from cvops.evaluation.model_eval import evaluate_model
    from cvops.loop.evaluation import evaluation_metrics
    from cvops.rollout.deploy import deploy_champion
    from cvops.rollout.gate import retire_alias
    from cvops.rollout.report import write_evidence

    version = registry.aliases(model_name)[CHALLENGER]
    package = registry.resolve(f"models:/{model_name}/{version}")
    metrics = evaluation_metrics(evaluate_model(package, heldout))
    passed = metrics["map_50_95"] >= FIRST_MODEL_MIN_MAP
    decision = "promote" if passed else "rollback"
    check = {
        "name": "first_model_map_50_95",
        "is_passed": passed,
        "detail": f"no champion yet: mAP50-95 {metrics['map_50_95']:.4f} vs the floor {FIRST_MODEL_MIN_MAP}",
    }
    evidence: dict[str, Any] = {
        "model_name": model_name,
        "decision": decision,
        "at": datetime.now(UTC).isoformat(),
        "who": "cvops-ab-gate",
        "champion_version": None,
        "challenger_version": version,
        "heldout_data": str(heldout),
        "checks": [check],
        "heldout": {"challenger": metrics},
        "actions": [],
    }
    evidence_file, summary_file = write_evidence(out_dir, evidence)
    why = f"first model: {check['detail']}"
    record = {"evidence_file": str(evidence_file), "map_50_95": metrics["map_50_95"]}
    if passed:
        registry.promote(model_name, version, who="cvops-ab-gate", why=why, evidence=record)
        deployment = deploy_champion(
            model_name,
            registry.tracking_uri,
            "cluster" if target == "cluster" else "local",
            state_dir=state_dir,
        )
        evidence["actions"] = [
            f"promoted v{version} to champion",
            f"serving it at {deployment.url or 'the cluster'}",
        ]
    else:
        retire_alias(registry, model_name, CHALLENGER, "cvops-ab-gate", why, record)
        evidence["actions"] = [f"retired challenger v{version}"]
    write_evidence(out_dir, evidence)
    champion = version if passed else None
    return RolloutOutcome(decision, champion, version, evidence_file, summary_file)
