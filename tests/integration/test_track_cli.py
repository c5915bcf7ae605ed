"""``cvops track`` on real MOT17 frames, scored with TrackEval."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.cli.app import main
from cvops.metrics.tracking import MotSequence, evaluate_mot
from cvops.tracking.mot_files import read_mot_file
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration


def _score(sequence: Path, results: Path, frames: int) -> tuple[float, float, float]:
    combined = evaluate_mot(
        [MotSequence(sequence.name, sequence / "gt" / "gt.txt", results, frames)]
    ).combined
    return combined.hota, combined.mota, combined.idf1


def test_tracking_public_detections_scores_well(tmp_path: Path) -> None:
    sequence = fixture_path("mot17-mini/train/MOT17-04-FRCNN")
    out = tmp_path / "MOT17-04-FRCNN.txt"
    args = ["--detections", str(sequence / "det/det.txt"), "--frames", str(sequence / "img1")]
    code = main(["track", *args, "--out", str(out)])
    assert code == 0
    rows = read_mot_file(out)
    assert rows.frame.max() == 8  # only the 8 frames that have images, though det.txt covers 1050
    hota, mota, idf1 = _score(sequence, out, 8)
    assert hota > 0.6
    assert mota > 0.5
    assert idf1 > 0.6


def test_tracking_with_a_model_on_frames(tmp_path: Path, yolox_package: Path) -> None:
    sequence = fixture_path("mot17-mini/train/MOT17-09-FRCNN")
    out = tmp_path / "MOT17-09-FRCNN.txt"
    args = ["--model", str(yolox_package), "--frames", str(sequence / "img1"), "--class", "person"]
    code = main(["track", *args, "--out", str(out), "--threads", "2"])
    assert code == 0
    hota, mota, _ = _score(sequence, out, 4)
    assert hota > 0.3
    assert mota > 0.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "pkg"], "exactly one of --detections and --model"),
        ([], None),
    ],
)
def test_bad_track_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str | None
) -> None:
    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,10,20,40,7.5,-1,-1,-1\n")  # a DPM-style score outside [0, 1]
    code = main(["track", "--detections", str(det), "--out", str(tmp_path / "out.txt"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert (message or "expected detection scores in [0, 1]") in err
