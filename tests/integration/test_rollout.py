"""Canary rollout on the embedded defaults: real registry, real router and model servers, real replay.

One registry (MLflow on sqlite in tmp) holds the published YOLOX-nano as champion, an identical
copy as a good challenger and a degraded copy (wrong colour order and a stretched resize) as a
bad one. The gate must promote the first and roll back the second, and say why in the history.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cvops.errors import RolloutError
from cvops.processes import free_port
from cvops.registry.mlflow_registry import ModelRegistry
from cvops.rollout.decision import GateConfig
from cvops.rollout.deploy import canary_status, deploy_canary, deploy_champion, set_cluster_split, stop_canary
from cvops.rollout.gate import retire_alias, run_ab_gate
from cvops.rollout.local import is_running
from cvops.rollout.replay import ReplayConfig
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

NAME = "det"
# The machine is shared and small: the SLO is loose so that only the held-out numbers decide here.
CONFIG = GateConfig(slo_p99_ms=20_000, n_resamples=300, min_requests_per_variant=5)
REPLAY = ReplayConfig(max_frames=50, rate_per_s=None, concurrency=2)


@dataclass(frozen=True)
class _Setup:
    state_dir: Path
    registry: ModelRegistry
    good: Path
    bad: Path


def _variant(source: Path, out: Path, name: str, degrade: bool) -> Path:
    shutil.copytree(source, out)
    spec = json.loads((out / "model.json").read_text())
    spec["name"] = name
    if degrade:  # the same weights fed wrongly: RGB instead of BGR, stretched instead of letterboxed
        spec["preprocessing"] |= {"color": "rgb", "resize": "stretch"}
    (out / "model.json").write_text(json.dumps(spec))
    return out


@pytest.fixture(scope="module")
def setup(yolox_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Setup]:
    root = tmp_path_factory.mktemp("rollout")
    state_dir = root / "state"
    registry = ModelRegistry(state_dir=state_dir)
    registry.register(yolox_package, NAME)
    registry.promote(NAME, 1, "test", "first model")
    good = _variant(yolox_package, root / "good", "yolox_nano_retrained", degrade=False)
    bad = _variant(yolox_package, root / "bad", "yolox_nano_broken", degrade=True)
    yield _Setup(state_dir, registry, good, bad)
    stop_canary(NAME, state_dir)


def _cvops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from cvops.cli.app import main

    code = main(["rollout", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def test_gate_promotes_a_good_challenger_and_rolls_back_a_bad_one(
    setup: _Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CVOPS_STATE_DIR", str(setup.state_dir))
    registry = setup.registry
    heldout = fixture_path("coco8/annotations_coco_all8.json")
    video = str(fixture_path("video/bikes.mp4"))
    gate_args = (
        "gate",
        NAME,
        "--heldout",
        str(heldout),
        "--replay",
        video,
        "--frames",
        "20",
        "--resamples",
        "50",
        "--min-requests",
        "3",
    )

    # Errors before anything runs: one line each, exit 2.
    code, _, err = _cvops(capsys, "deploy", NAME)
    assert code == 2
    assert "no 'challenger' alias" in _one_error_line(err)

    registry.register(setup.good, NAME)
    registry.promote(NAME, 2, "ci", "candidate", alias="challenger")
    empty = tmp_path / "empty.json"
    empty.write_text(
        json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]})
    )
    code, _, err = _cvops(
        capsys, "gate", NAME, "--heldout", str(empty), "--replay", video, "--out", str(tmp_path)
    )
    assert (code, "expected at least one image" in _one_error_line(err)) == (2, True)
    code, _, err = _cvops(capsys, *gate_args, "--out", str(tmp_path / "none"))
    assert (code, "no canary deployed" in _one_error_line(err)) == (2, True)
    dead = f"http://127.0.0.1:{free_port()}"
    code, _, err = _cvops(capsys, *gate_args, "--out", str(tmp_path / "dead"), "--router-url", dead)
    assert (code, "server not reachable" in _one_error_line(err)) == (2, True)

    # Good challenger: deploy through the CLI, gate through the API.
    code, out, err = _cvops(capsys, "deploy", NAME, "--canary-percent", "50", "--shadow-percent", "100")
    assert code == 0, err
    assert "champion v1, challenger v2 at 50% (shadow 100%)" in out
    deployment, running = canary_status(NAME, setup.state_dir)
    assert deployment is not None
    assert running
    port = deployment.port
    code, out, _ = _cvops(capsys, "status", NAME)
    assert (code, "local canary, running" in out) == (0, True)

    decision = run_ab_gate(
        NAME, None, heldout, video, CONFIG, tmp_path / "good", replay=REPLAY, state_dir=setup.state_dir
    )
    assert decision.outcome == "promote", [c.detail for c in decision.checks if not c.is_passed]
    assert registry.aliases(NAME) == {"champion": 2}
    evidence = json.loads(decision.evidence_file.read_text())
    assert evidence["heldout"]["map_50_95_delta"]["estimate"] == 0.0  # same weights, same preprocessing
    live = evidence["live"]
    assert live["requests"]["champion"] + live["requests"]["challenger"] == REPLAY.max_frames
    assert live["requests"]["challenger"] >= CONFIG.min_requests_per_variant
    assert live["p99_ms"]["challenger"]["low"] <= live["p99_ms"]["challenger"]["high"]
    assert live["shadow"]["frames"] > 0
    assert live["shadow"]["mean"]["matched_fraction"] == pytest.approx(
        1.0
    )  # identical answers on shadowed frames
    assert "PROMOTE" in decision.summary_file.read_text()
    promoted = [e for e in registry.history(NAME) if e.alias == "champion" and e.to_version == 2]
    assert len(promoted) == 1
    assert promoted[0].evidence["decision"] == "promote"
    assert promoted[0].evidence["evidence_file"] == str(decision.evidence_file)
    assert {c["name"] for c in promoted[0].evidence["checks"]} >= {"map_50_95_delta", "p99_latency_ms"}
    assert decision.deployment is not None
    assert (decision.deployment.mode, decision.deployment.port) == ("single", port)
    assert is_running(decision.deployment)
    assert httpx.get(f"{decision.deployment.url}/v2/health/ready", timeout=10).status_code == 200

    # Bad challenger: deploy through the API (replaces the champion-only server on the same port).
    registry.register(setup.bad, NAME)
    registry.promote(NAME, 3, "ci", "candidate", alias="challenger")
    deployment = deploy_canary(NAME, None, 50, "local", shadow_percent=100, state_dir=setup.state_dir)
    assert (deployment.port, deployment.champion_version, deployment.challenger_version) == (port, 2, 3)
    code, out, err = _cvops(capsys, *gate_args, "--out", str(tmp_path / "bad"), "--slo-p99-ms", "20000")
    assert code == 0, err
    assert "ROLLBACK challenger v3 vs champion v2" in out
    assert "FAIL  map_50_95_delta" in out
    assert registry.aliases(NAME) == {"champion": 2}
    last = registry.history(NAME)[-1]
    assert (last.alias, last.action, last.from_version, last.to_version) == ("challenger", "retire", 3, None)
    assert last.evidence["decision"] == "rollback"
    assert last.evidence["heldout"]["map_50_95_delta"]["estimate"] < -0.05
    assert "map_50_95_delta" in last.why
    assert json.loads((tmp_path / "bad" / "evidence.json").read_text())["actions"][-1].startswith(
        "local: champion v2"
    )

    code, out, _ = _cvops(capsys, "stop", NAME)
    assert (code, out) == (0, f"{NAME}: stopped\n")
    assert _cvops(capsys, "status", NAME)[:2] == (1, f"{NAME}: not deployed\n")


def test_cluster_canary_promotion_steps_with_mocked_cluster(setup: _Setup, tmp_path: Path) -> None:
    """The cluster path on a fake Kubernetes API (no cluster exists here): canary, 100 percent, champion."""
    from tests.unit.test_rollout_manifest import _FakeCustomObjectsApi, _validate

    registry, api = setup.registry, _FakeCustomObjectsApi()
    champion = registry.show(NAME, "champion")
    registry.promote(NAME, champion.version, "ci", "cluster test", alias="challenger")
    try:
        deployment = deploy_canary(
            NAME, registry.tracking_uri, 30, "cluster", shadow_percent=10, state_dir=tmp_path, kube_api=api
        )
        stored = api.objects[("cvops", "detector")]
        _validate(stored)
        predictor = stored["spec"]["predictor"]
        assert predictor["canaryTrafficPercent"] == 30
        assert predictor["model"]["storageUri"] == registry.show(NAME, "challenger").source
        assert canary_status(NAME, tmp_path) == (deployment, True)
        with pytest.raises(RolloutError, match="deployed on a cluster"):
            stop_canary(NAME, tmp_path)

        full = set_cluster_split(deployment, registry, 100, api)
        assert api.objects[("cvops", "detector")]["spec"]["predictor"]["canaryTrafficPercent"] == 100
        assert full.canary_percent == 100
        final = deploy_champion(NAME, registry.tracking_uri, "cluster", state_dir=tmp_path, kube_api=api)
        predictor = api.objects[("cvops", "detector")]["spec"]["predictor"]
        assert "canaryTrafficPercent" not in predictor
        assert predictor["model"]["storageUri"] == registry.show(NAME, "champion").source
        assert (final.mode, final.challenger_version) == ("single", None)
        assert [call.split()[0] for call in api.calls] == ["get", "create", "get", "patch", "get", "patch"]
    finally:
        retire_alias(registry, NAME, "challenger", "ci", "cluster test done", {})
