"""kfp.local runs, compiles and reports a real (tiny) pipeline; the loop's pipeline compiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cvops.cli.app import main
from cvops.cli.pipeline import parse_params
from cvops.errors import InvalidInputError
from cvops.orchestration.kfp_runner import compile_pipeline, load_pipeline, run_local
from cvops.orchestration.run_report import write_run_report
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

TINY = """
from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count(n: int, out: dsl.Output[dsl.Dataset]) -> int:
    import os
    import time

    time.sleep(0.5)
    os.makedirs(out.path, exist_ok=True)
    out.metadata["files"] = n
    if n < 0:
        raise ValueError("n must not be negative")
    return n * 2


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def decide(doubled: int) -> str:
    return "promote" if doubled > 2 else "rollback"


@dsl.pipeline(name="tiny")
def tiny(n: int = 2) -> str:
    counted = count(n=n)
    return decide(doubled=counted.outputs["Output"]).output
"""


@pytest.fixture
def tiny_pipeline(tmp_path: Path) -> Path:
    folder = tmp_path / "repo" / "pipelines"
    folder.mkdir(parents=True)
    path = folder / "tiny.py"
    path.write_text(TINY)
    return path


def test_local_run_records_each_task_with_its_outputs_and_the_report_shows_them(
    tiny_pipeline: Path, tmp_path: Path
) -> None:
    run = run_local(tiny_pipeline, {"n": 3}, tmp_path / "root")
    assert run.is_succeeded, run.error
    assert run.outputs == {"Output": "promote"}
    assert [task.name for task in run.tasks] == ["count", "decide"]
    durations = [task.duration_s for task in run.tasks]
    assert durations[0] is not None
    assert durations[0] >= 0.5  # the step sleeps 0.5 s: timed from kfp.local's start and end logs
    assert durations[1] is not None
    assert durations[1] < durations[0] + 5
    assert run.tasks[0].outputs["parameterValues"]["Output"] == 6
    report = write_run_report(run, tmp_path / "report", {"MLflow": "mlflow ui"})
    page = report.read_text()
    assert "Decision: promote" not in page  # the decision comes from a task output named "decision"
    assert "count" in page
    assert "out.files = 3" in page
    assert "mlflow ui" in page
    summary = json.loads((tmp_path / "report" / "run_summary.json").read_text())
    assert summary["succeeded"] is True
    assert [t["name"] for t in summary["tasks"]] == ["count", "decide"]


def test_a_failing_step_ends_the_run_and_names_the_step(tiny_pipeline: Path, tmp_path: Path) -> None:
    run = run_local(tiny_pipeline, {"n": -1}, tmp_path / "root")
    assert not run.is_succeeded
    assert run.error is not None
    assert "count" in run.error
    assert [task.name for task in run.tasks] == ["count"]
    assert run.tasks[0].finished_at is None


def test_load_pipeline_rejects_a_file_without_its_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "pipelines" / "other.py"
    path.parent.mkdir()
    path.write_text("x = 1\n")
    with pytest.raises(InvalidInputError, match=r"expected a @dsl\.pipeline function named other"):
        load_pipeline(path)
    with pytest.raises(InvalidInputError, match="no such file"):
        load_pipeline(tmp_path / "missing.py")


def test_the_continuous_training_pipeline_compiles_with_every_step(tmp_path: Path) -> None:
    target = compile_pipeline(REPO_ROOT / "pipelines" / "continuous_training.py", tmp_path / "ct.yaml")
    spec = yaml.safe_load(target.read_text())
    tasks = set(spec["root"]["dag"]["tasks"])
    components = {p.name for p in (REPO_ROOT / "components").iterdir() if (p / "component.py").is_file()}
    assert tasks == {name.replace("_", "-") for name in components}
    assert spec["pipelineInfo"]["name"] == "continuous-training"


def test_cli_compile_writes_the_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = REPO_ROOT / "pipelines" / "continuous_training.py"
    assert main(["pipeline", "compile", "--pipeline", str(pipeline), "--out", str(tmp_path / "ct.yaml")]) == 0
    assert (tmp_path / "ct.yaml").is_file()
    assert capsys.readouterr().out.strip() == str(tmp_path / "ct.yaml")


def test_cli_submit_to_an_unreachable_host_fails_in_one_line(
    tiny_pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["pipeline", "submit", "--host", "http://127.0.0.1:9", "--pipeline", str(tiny_pipeline)])
    assert code == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9: could not start tiny" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["n=3"], {"n": 3}),
        (["rate=0.5", "flag=true"], {"rate": 0.5, "flag": True}),
        (["uri=/data/x", "name=abc"], {"uri": "/data/x", "name": "abc"}),
        (["list=[1,2]"], {"list": "[1,2]"}),
    ],
    ids=["int", "float-and-bool", "strings", "non-scalar-json-stays-text"],
)
def test_parse_params(items: list[str], expected: dict[str, object]) -> None:
    assert parse_params(items) == expected


def test_parse_params_rejects_an_item_without_a_key() -> None:
    with pytest.raises(InvalidInputError, match="expected KEY=VALUE"):
        parse_params(["=3"])
