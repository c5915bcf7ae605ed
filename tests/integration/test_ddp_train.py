"""``cvops train``: a real 2-rank torchrun job (gloo) on tiny synthetic data, its checkpoints and failures."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from cvops.cli.app import main
from cvops.data.synthetic import SyntheticDataset, generate_scenes
from cvops.training.ddp import (
    DdpTrainConfig,
    DdpTrainSummary,
    describe_failure,
    rank_error_file,
    read_summary,
)

pytestmark = pytest.mark.integration

IMGSZ = 96


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate_scenes(tmp_path_factory.mktemp("ddp_data"), 32, 8, IMGSZ, seed=1)


def _train_args(data: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--model", "yolov8n.yaml", "--nproc", "2", "--epochs", str(epochs),
            "--imgsz", str(IMGSZ), "--batch", "8", "--out", str(out), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tiny_dataset: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 ranks x 2 epochs through ``cvops train``, per-epoch metrics into a sqlite MLflow store."""
    out = tmp_path_factory.mktemp("ddp_run")
    tracking_uri = f"sqlite:///{out.parent / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out.parent)  # anything MLflow writes relative to the working folder stays here
        assert main(_train_args(tiny_dataset.root, out, 2, "--tracking-uri", tracking_uri)) == 0
    return out


def test_run_writes_summary_checkpoints_and_rank_logs(trained_run: Path) -> None:
    summary = read_summary(trained_run)
    assert (summary.world_size, summary.global_batch, summary.per_rank_batch) == (2, 8, 4)
    assert (summary.start_epoch, summary.epochs_completed, len(summary.epochs)) == (0, 2, 2)
    assert all(r.epoch_time_s >= r.train_time_s > 0 for r in summary.epochs)
    assert summary.backend == "gloo"
    for name in (
        "weights/last.pt",
        "weights/best.pt",
        "logs/rank_0.log",
        "logs/rank_1.log",
        "train_config.json",
    ):
        assert (trained_run / name).is_file(), name
    assert not list((trained_run / "logs").glob("*.error.json"))


def test_parameters_are_identical_across_ranks(trained_run: Path) -> None:
    hashes = read_summary(trained_run).state_sha256_per_rank
    assert len(hashes) == 2
    assert hashes[0] == hashes[1]


def test_checkpoint_loads_with_ultralytics_and_exports_to_onnx(
    trained_run: Path, tiny_dataset: SyntheticDataset, tmp_path: Path
) -> None:
    from ultralytics import YOLO

    from cvops.training.export import export_onnx

    model = YOLO(str(trained_run / "weights" / "best.pt"))
    assert model.task == "detect"
    assert tuple(model.names[i] for i in sorted(model.names)) == tiny_dataset.class_names
    spec = export_onnx(str(trained_run / "weights" / "last.pt"), tmp_path / "package", imgsz=IMGSZ)
    assert (spec.family, spec.class_names, spec.input_width) == ("yolov8", tiny_dataset.class_names, IMGSZ)
    assert (tmp_path / "package" / "model.onnx").stat().st_size > 1_000_000


def test_mlflow_gets_one_metric_point_per_epoch(trained_run: Path) -> None:
    import mlflow

    summary = read_summary(trained_run)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{trained_run.parent / 'mlflow.db'}")
    history = client.get_metric_history(str(summary.mlflow_run_id), "map50_95")
    assert [point.step for point in sorted(history, key=lambda p: p.step)] == [0, 1]
    assert not (trained_run.parent / "mlruns").exists()


def test_resume_continues_from_the_saved_epoch_and_stops_early(
    trained_run: Path, tiny_dataset: SyntheticDataset, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(trained_run, out)
    before = read_summary(trained_run)
    assert main(_train_args(tiny_dataset.root, out, 4, "--resume", "--patience", "1")) == 0
    after: DdpTrainSummary = read_summary(out)
    assert after.start_epoch == 2
    assert after.epochs[:2] == before.epochs  # the first two epochs are the saved ones, not retrained
    assert len(after.epochs) == after.epochs_completed >= 3
    assert after.is_state_identical_across_ranks
    # Patience 1: the run stops at the first epoch that does not beat the best mAP50-95 so far.
    maps = [r.map50_95 for r in after.epochs]
    first_miss = next((e for e in range(2, 4) if maps[e] <= max(maps[:e])), None)
    assert after.is_stopped_early == (first_miss is not None and first_miss < 3)
    assert after.epochs_completed == (4 if first_miss is None else first_miss + 1)


def test_bad_dataset_path_fails_with_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_such_dataset"
    assert main(_train_args(missing, tmp_path / "out", 1)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "--data" in lines[0]
    assert str(missing) in lines[0]


def test_a_failing_rank_is_named_in_one_line(
    tiny_dataset: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = _train_args(tiny_dataset.root, out, 1)
    args[args.index("yolov8n.yaml")] = (
        "no_such_model.yaml"  # passes the launcher's checks, fails in the ranks
    )
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    # Both ranks fail alike; the line names whichever failed first, and its log.
    match = re.search(r"rank (\d) failed: .*no_such_model\.yaml.*\(log: (\S+)\)", lines[0])
    assert match is not None, lines[0]
    assert Path(match.group(2)) == out / "logs" / f"rank_{match.group(1)}.log"


def test_failure_report_names_the_first_rank_that_failed(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    for rank, at in ((1, 20.0), (0, 10.0)):
        record = {"rank": rank, "error": f"boom {rank}", "time": at}
        rank_error_file(tmp_path, rank).write_text(json.dumps(record))
    assert describe_failure(tmp_path, 1).startswith("rank 0 failed: boom 0 (log: ")


def test_failure_report_falls_back_to_torchrun_for_a_killed_rank(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    report = (
        "Root Cause (first observed failure):\n[0]:\n  time : x\n  rank : 1 (local_rank: 1)\n  exitcode : -9"
    )
    (tmp_path / "logs" / "torchrun.log").write_text(report)
    assert describe_failure(tmp_path, 1).startswith("rank 1 was killed by signal 9")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch": 9, "nproc": 2}, "split evenly over 2 ranks"),
        ({"imgsz": 100}, "multiple of 32"),
        ({"epochs": 0}, "epochs: expected >= 1"),
    ],
    ids=["uneven-batch", "imgsz", "epochs"],
)
def test_config_rejects_bad_values(changes: dict[str, int], message: str) -> None:
    from cvops.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=message):
        DdpTrainConfig(data_yaml=Path("d.yaml"), model="yolov8n.yaml", out_dir=Path("o"), **changes)
