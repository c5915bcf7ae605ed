"""The whole loop, twice, on the embedded defaults: kfp.local, a real Label Studio, MLflow on sqlite,
Feast on sqlite, DDP on 2 ranks, the local canary router and its model servers on 127.0.0.1.

The first iteration has no champion: frames are picked by diversity, labeled by the simulated
annotator, a model is trained, exported behind the gate, registered and judged alone. The second
starts from that champion: a canary runs next to it and the A/B gate decides with evidence.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvops.loop.demo import DEMO_MODEL_NAME, DEMO_PROJECT, DemoSettings, run_demo
from tests.conftest import REPO_ROOT
from tests.integration.labelstudio_server import _copy_template as copy_template
from tests.integration.labelstudio_server import _template as labelstudio_template

pytestmark = pytest.mark.e2e

LS_VENV = REPO_ROOT / ".venv-labelstudio"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if not (LS_VENV / "bin" / "label-studio").is_file():
        pytest.skip(f"Label Studio server missing: {LS_VENV} (run `make labelstudio`)")
    state = tmp_path / "state"
    monkeypatch.setenv("CVOPS_STATE_DIR", str(state))  # the pipeline's steps are subprocesses
    # A migrated empty Label Studio (built once per lock): the first start's migrations take minutes here.
    copy_template(labelstudio_template(), state / "labelstudio")
    yield state
    from cvops.annotation.server import stop_server
    from cvops.rollout.deploy import stop_canary

    stop_canary(DEMO_MODEL_NAME, state)
    stop_server(state / "labelstudio")


def test_two_iterations_of_the_loop(state_dir: Path, tmp_path: Path) -> None:
    from cvops.annotation.connection import LabelStudioConnection
    from cvops.annotation.push import list_tasks
    from cvops.annotation.server import read_server_info
    from cvops.registry.mlflow_registry import ModelRegistry

    settings = DemoSettings(
        pipeline_file=REPO_ROOT / "pipelines" / "continuous_training.py",
        feature_declarations=REPO_ROOT / "feature_repo",
        labelstudio_venv=LS_VENV,
        out_dir=tmp_path / "report-1",
        budget=16,
        epochs=18,  # ~0.2 mAP50-95 on these scenes (above the first-model floor of 0.05)
        replay_frames=40,  # an even split: ~20 answers per variant, the gate needs 10
        labeled_count=96,
        pool_count=64,
        heldout_count=24,
    )
    first = run_demo(settings, state_dir)
    summary = json.loads((tmp_path / "report-1" / "run_summary.json").read_text())
    names = [task["name"] for task in summary["tasks"]]
    assert names[0] == "pull-dataset"
    assert names[-1] == "ab-gate"
    assert len(names) == 12
    assert all(task["duration_s"] is not None for task in summary["tasks"])
    assert sum(task["duration_s"] for task in summary["tasks"]) <= first.run.elapsed_s + 1
    assert "Decision: promote" in first.report.read_text()
    registry = ModelRegistry(state_dir=state_dir)
    record = registry.show(DEMO_MODEL_NAME, 1)
    assert record.lineage.dataset_version is not None
    assert record.lineage.training_run_id
    decision_1 = first.run.outputs["Output"]
    assert decision_1 in ("promote", "rollback")
    if decision_1 == "rollback":
        pytest.fail("the first model did not reach the floor of the first-model gate: train longer")
    assert registry.aliases(DEMO_MODEL_NAME).get("champion") == 1

    second = run_demo(dataclasses.replace(settings, out_dir=tmp_path / "report-2"), state_dir)
    assert second.run.is_succeeded
    decision_2 = second.run.outputs["Output"]
    assert decision_2 in ("promote", "rollback")
    challenger = registry.show(DEMO_MODEL_NAME, 2)
    assert challenger.lineage.parent_version == f"{DEMO_MODEL_NAME}/1"
    assert challenger.lineage.dataset_version != record.lineage.dataset_version
    history = registry.history(DEMO_MODEL_NAME)
    # The gate's decisions (the first model's promotion, then the A/B decision) carry their evidence;
    # the challenger alias it retires along the way is recorded too, without evidence of its own.
    decisions = [e for e in history if e.who == "cvops-ab-gate" and "evidence_file" in e.evidence]
    assert len(decisions) == 2
    assert decisions[-1].action in ("promote", "retire")
    evidence = json.loads(Path(str(decisions[-1].evidence["evidence_file"])).read_text())
    assert evidence["decision"] == decision_2
    assert min(evidence["live"]["requests"].values()) >= 10  # both variants answered replayed frames
    assert evidence["heldout"]

    info = read_server_info(state_dir / "labelstudio")
    assert info is not None
    with LabelStudioConnection.from_server(info).client() as client:
        projects = client.get("/api/projects/")
        project_id = next(p["id"] for p in projects["results"] if p["title"] == DEMO_PROJECT)
        assert len(list_tasks(client, project_id)) == 2 * settings.budget
