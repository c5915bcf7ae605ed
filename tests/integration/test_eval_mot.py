"""Tracking metrics through TrackEval reproduce the published MOTChallenge numbers on real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvops.cli.app import main
from cvops.errors import InvalidInputError
from cvops.metrics.tracking import MotEvaluation, MotMetrics, MotSequence, evaluate_mot
from cvops.tracking.mot_files import read_mot_file, write_mot_results
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

# (sequence, frames): the two TUD sequences shipped with py-motmetrics, scored against "test.txt".
TUD = [("TUD-Campus", 71), ("TUD-Stadtmitte", 179)]
# Reference JSON field -> MotMetrics attribute, per sequence and COMBINED_SEQ.
FIELDS = {
    "HOTA": "hota", "DetA": "det_a", "AssA": "ass_a", "LocA": "loc_a", "MOTA": "mota", "MOTP": "motp",
    "IDF1": "idf1", "IDSW": "idsw", "CLR_FP": "fp", "CLR_FN": "fn", "CLR_TP": "tp",
    "MT": "mt", "PT": "pt", "ML": "ml", "Frag": "frag",
}  # fmt: skip


def _tud_sequences() -> list[MotSequence]:
    return [
        MotSequence(
            name,
            fixture_path(f"mot15-tud/{name}/gt.txt"),
            fixture_path(f"mot15-tud/{name}/test.txt"),
            frames,
        )
        for name, frames in TUD
    ]


@pytest.fixture(scope="module")
def tud_reference() -> dict[str, dict[str, float]]:
    data = json.loads(fixture_path("mot15-tud/reference_metrics_test_txt.json").read_text())
    return {seq: values["trackeval"] for seq, values in data.items()}


@pytest.fixture(scope="module")
def tud_result() -> MotEvaluation:
    return evaluate_mot(_tud_sequences(), benchmark="MOT15")


def _assert_matches(metrics: MotMetrics, reference: dict[str, float]) -> None:
    for key, attribute in FIELDS.items():
        assert getattr(metrics, attribute) == pytest.approx(reference[key], abs=1e-6), key


def test_tud_reproduces_published_combined_values(
    tud_result: MotEvaluation, tud_reference: dict[str, dict[str, float]]
) -> None:
    result = tud_result
    # Published: motmetrics' test_motchallenge_files and mmtracking's MOT15 dataset test.
    assert result.combined.mota == pytest.approx(0.555116, abs=1e-6)
    assert result.combined.idf1 == pytest.approx(0.624296, abs=1e-6)
    assert result.combined.idp == pytest.approx(0.799176, abs=1e-6)
    assert result.combined.idr == pytest.approx(0.512211, abs=1e-6)
    assert result.combined.recall == pytest.approx(0.602640, abs=1e-6)
    assert result.combined.precision == pytest.approx(0.940268, abs=1e-6)
    assert result.combined.hota == pytest.approx(0.4000, abs=1e-4)
    assert result.combined.num_gt_ids == 18
    _assert_matches(result.combined, tud_reference["COMBINED_SEQ"])


@pytest.mark.parametrize(("name", "frames"), TUD, ids=[name for name, _ in TUD])
def test_tud_reproduces_each_sequence(
    tud_result: MotEvaluation, tud_reference: dict[str, dict[str, float]], name: str, frames: int
) -> None:
    assert list(tud_result.sequences) == [name for name, _ in TUD]
    _assert_matches(tud_result.sequences[name], tud_reference[name])


def test_cli_writes_json_and_prints_table(
    tmp_path: Path, tud_reference: dict[str, dict[str, float]], capsys: pytest.CaptureFixture[str]
) -> None:
    # --gt as a split folder <SEQ>/gt/gt.txt and --pred as a folder of <SEQ>.txt.
    split, results = tmp_path / "train", tmp_path / "results"
    for name, _ in TUD:
        (split / name / "gt").mkdir(parents=True)
        (split / name / "gt" / "gt.txt").write_bytes(fixture_path(f"mot15-tud/{name}/gt.txt").read_bytes())
        results.mkdir(exist_ok=True)
        (results / f"{name}.txt").write_bytes(fixture_path(f"mot15-tud/{name}/test.txt").read_bytes())
    out = tmp_path / "metrics.json"

    code = main(
        ["eval-mot", "--gt", str(split), "--pred", str(results), "--benchmark", "MOT15", "--json", str(out)]
    )

    assert code == 0
    data = json.loads(out.read_text())
    assert data["benchmark"] == "MOT15"
    assert list(data["sequences"]) == ["TUD-Campus", "TUD-Stadtmitte"]
    assert data["combined"]["mota"] == pytest.approx(0.5551155, abs=1e-6)
    assert data["combined"]["hota"] == pytest.approx(tud_reference["COMBINED_SEQ"]["HOTA"], abs=1e-6)
    assert data["sequences"]["TUD-Campus"]["idsw"] == 7
    printed = capsys.readouterr().out
    assert "COMBINED" in printed
    assert "55.5" in printed  # MOTA in %


def test_cli_single_file_takes_seq_length_from_last_gt_frame(tmp_path: Path) -> None:
    out = tmp_path / "campus.json"
    gt, pred = fixture_path("mot15-tud/TUD-Campus/gt.txt"), fixture_path("mot15-tud/TUD-Campus/test.txt")
    assert main(["eval-mot", "--gt", str(gt), "--pred", str(pred), "-b", "MOT15", "--json", str(out)]) == 0
    campus = json.loads(out.read_text())["sequences"]["TUD-Campus"]
    assert (campus["mota"], campus["fp"], campus["fn"]) == (pytest.approx(0.5264624), 13, 150)


def test_cli_missing_gt_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = fixture_path("mot15-tud/TUD-Campus/test.txt")
    code = main(["eval-mot", "--gt", str(tmp_path / "absent" / "gt.txt"), "--pred", str(pred)])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "no such file" in lines[0]


def test_cli_malformed_pred_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = tmp_path / "TUD-Campus.txt"
    pred.write_text("1,3,113.84,274.5,57.307,130.05,-1,-1,-1,-1\n1,6,273.05\n")
    gt = fixture_path("mot15-tud/TUD-Campus/gt.txt")
    assert main(["eval-mot", "--gt", str(gt), "--pred", str(pred), "-b", "MOT15"]) == 2
    assert f"{pred}:2:" in capsys.readouterr().err


def _mot17_04() -> tuple[Path, int]:
    seq = fixture_path("mot17-mini/train/MOT17-04-FRCNN")
    # seqinfo.ini says the whole sequence (1050); gt and images cover only the first frames.
    return seq / "gt" / "gt.txt", len(list((seq / "img1").glob("*.jpg")))


def test_mot17_gt_pedestrians_as_results_score_perfectly(tmp_path: Path) -> None:
    gt_path, frames = _mot17_04()
    assert frames == 8
    gt = read_mot_file(gt_path)
    # A perfect tracker outputs exactly the targets MOT17 scores: pedestrians not zero-marked.
    keep = (gt.class_id == 1) & (gt.score != 0)
    pred = tmp_path / "MOT17-04-FRCNN.txt"
    write_mot_results(pred, gt.frame[keep], gt.track_id[keep], gt.xywh[keep], np.ones(int(keep.sum())))

    result = evaluate_mot([MotSequence("MOT17-04-FRCNN", gt_path, pred, frames)], benchmark="MOT17")

    m = result.combined
    assert (m.mota, m.idf1, m.motp) == (1.0, 1.0, 1.0)
    assert m.hota == pytest.approx(1.0, abs=1e-9)
    assert (m.tp, m.fp, m.fn, m.idsw, m.frag) == (336, 0, 0, 0, 0)  # fixture README: 336 pedestrian boxes
    assert (m.mt, m.pt, m.ml, m.num_gt_ids) == (42, 0, 0, 42)


def test_mot17_rejects_results_with_non_pedestrian_classes() -> None:
    # The raw gt file holds cars, occluders, ... in its class column: TrackEval refuses it as results.
    gt_path, frames = _mot17_04()
    with pytest.raises(InvalidInputError, match="only valid for pedestrian class"):
        evaluate_mot([MotSequence("MOT17-04-FRCNN", gt_path, gt_path, frames)], benchmark="MOT17")


def test_repeated_id_in_a_frame_is_refused_with_trackevals_reason(tmp_path: Path) -> None:
    gt_path, frames = _mot17_04()
    det = fixture_path("mot17-mini/train/MOT17-04-FRCNN/det/det.txt")  # every box has id -1
    with pytest.raises(InvalidInputError, match="same ID more than once"):
        evaluate_mot([MotSequence("MOT17-04-FRCNN", gt_path, det, frames)])


def test_bad_arguments_are_refused_before_trackeval(tmp_path: Path) -> None:
    gt_path, _ = _mot17_04()
    with pytest.raises(InvalidInputError, match="at least one sequence"):
        evaluate_mot([])
    with pytest.raises(InvalidInputError, match="seq_length >= 1"):
        MotSequence("a", gt_path, gt_path, 0)
    with pytest.raises(InvalidInputError, match="plain folder name"):
        MotSequence("a/b", gt_path, gt_path, 8)
    with pytest.raises(InvalidInputError, match="unique names"):
        evaluate_mot([MotSequence("a", gt_path, gt_path, 8)] * 2)
    with pytest.raises(InvalidInputError, match="benchmark"):
        evaluate_mot([MotSequence("a", gt_path, gt_path, 8)], benchmark="MOT99")  # type: ignore[arg-type]
