"""MOTChallenge text files: parse every variant of the format, write results that read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvops.errors import InvalidInputError
from cvops.tracking.mot_files import (
    SeqInfo,
    list_mot_sequences,
    read_mot_file,
    read_seqinfo,
    write_mot_results,
)
from tests.conftest import fixture_path


def _write(tmp_path: Path, text: str, name: str = "gt.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_results_round_trip(tmp_path: Path) -> None:
    frames = np.array([1, 1, 2])
    ids = np.array([3, 7, 3])
    xywh = np.array([[10.5, 20.25, 30.0, 60.0], [1359.12, 0.0, 61.0, 118.8], [11.0, 21.0, 30.0, 60.0]])
    scores = np.array([0.9, 0.45, 0.875])
    path = tmp_path / "out" / "SEQ.txt"
    write_mot_results(path, frames, ids, xywh, scores)

    assert path.read_text().splitlines()[0] == "1,3,10.5,20.25,30,60,0.9,-1,-1,-1"
    rows = read_mot_file(path)
    np.testing.assert_array_equal(rows.frame, frames)
    np.testing.assert_array_equal(rows.track_id, ids)
    np.testing.assert_array_equal(rows.xywh, xywh.astype(np.float32))
    np.testing.assert_array_equal(rows.score, scores.astype(np.float32))
    np.testing.assert_array_equal(rows.class_id, [-1, -1, -1])
    np.testing.assert_array_equal(rows.visibility, [-1, -1, -1])
    assert rows.frame.dtype == np.int64
    assert rows.xywh.dtype == np.float32


def test_write_rejects_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="expected 2 track ids"):
        write_mot_results(tmp_path / "x.txt", [1, 2], [1], np.zeros((2, 4)), [1.0, 1.0])


@pytest.mark.parametrize(
    ("line", "score", "class_id", "visibility"),
    [
        ("5,2,1,2,3,4", 1.0, -1, -1.0),
        ("5,2,1,2,3,4,0.7", 0.7, -1, -1.0),
        ("5,2,1,2,3,4,0,7,0.25", 0.0, 7, 0.25),
        ("5,2,1,2,3,4,1,-1,-1,-1", 1.0, -1, -1.0),
        ("5, 2, 1, 2, 3, 4, 1, 1, 1.0,", 1.0, 1, 1.0),
    ],
    ids=["6-cols", "7-cols-det", "9-cols-mot17-gt", "10-cols-mot15", "spaces-trailing-comma"],
)
def test_column_variants(tmp_path: Path, line: str, score: float, class_id: int, visibility: float) -> None:
    rows = read_mot_file(_write(tmp_path, line + "\n"))
    assert len(rows) == 1
    assert (rows.frame[0], rows.track_id[0]) == (5, 2)
    np.testing.assert_array_equal(rows.xywh[0], [1, 2, 3, 4])
    assert rows.score[0] == pytest.approx(score)
    assert rows.class_id[0] == class_id
    assert rows.visibility[0] == pytest.approx(visibility)


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,1,399,182,121,229,1,-1,-1,-1\r\n2,1,400,183,121,229,1,-1,-1,-1\r\n")
    rows = read_mot_file(path)
    np.testing.assert_array_equal(rows.frame, [1, 2])
    np.testing.assert_array_equal(rows.visibility, [-1, -1])


def test_real_crlf_fixture() -> None:
    rows = read_mot_file(fixture_path("mot15-tud/TUD-Campus/gt.txt"))
    assert len(rows) == 359
    assert rows.max_frame == 71
    assert set(rows.track_id.tolist()) == set(range(1, 9))


@pytest.mark.parametrize(
    ("text", "line_number", "message"),
    [
        ("1,1,1,1,1,1\n1,2,3\n", 2, "expected 6 to 10 comma-separated columns, got 3"),
        ("1,1,1,1,1,1\n\n1,1,x,1,1,1\n", 3, "expected numbers"),
        ("0,1,1,1,1,1\n", 1, "expected an integer frame >= 1, got 0"),
        ("1.5,1,1,1,1,1\n", 1, "expected an integer frame >= 1, got 1.5"),
        ("1,1,nan,1,1,1\n", 1, "expected finite numbers"),
        ("1 1 1 1 1 1\n", 1, "got 1"),
        ("1,1,1,1,1,1,1,1,1,1,1\n", 1, "got 11"),
    ],
    ids=["too-few", "text", "frame-0", "fractional-frame", "nan", "spaces", "too-many"],
)
def test_malformed_line_names_file_and_line(
    tmp_path: Path, text: str, line_number: int, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InvalidInputError, match=message) as info:
        read_mot_file(path)
    assert f"{path}:{line_number}:" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        read_mot_file(tmp_path / "absent.txt")


@pytest.mark.parametrize("text", ["", "\n", "\r\n\r\n"], ids=["empty", "newline", "crlf-blank"])
def test_empty_file_gives_zero_rows(tmp_path: Path, text: str) -> None:
    rows = read_mot_file(_write(tmp_path, text))
    assert len(rows) == 0
    assert rows.xywh.shape == (0, 4)
    assert rows.max_frame == 0


def test_max_frame_keeps_earlier_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,1,0,0,1,1\n3,1,0,0,1,1\n2,1,0,0,1,1\n")
    np.testing.assert_array_equal(read_mot_file(path, max_frame=2).frame, [1, 2])
    np.testing.assert_array_equal(read_mot_file(path).up_to_frame(1).frame, [1])


def test_seqinfo_of_real_sequence() -> None:
    info = read_seqinfo(fixture_path("mot17-mini/train/MOT17-04-FRCNN/seqinfo.ini"))
    assert info == SeqInfo("MOT17-04-FRCNN", 1050, 1920, 1080, 30.0, "img1", ".jpg")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Sequence]\nname=x\nseqLength=10\nimWidth=640\n", "expected key 'imHeight'"),
        ("[Sequence]\nname=x\nseqLength=ten\nimWidth=1\nimHeight=1\nframeRate=30\n", "expected a number"),
        ("name=x\n", "not a valid seqinfo.ini"),
        ("[Other]\nname=x\n", "expected key 'Sequence'"),
    ],
    ids=["missing-key", "not-a-number", "no-section-header", "no-sequence-section"],
)
def test_bad_seqinfo(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_seqinfo(_write(tmp_path, text, "seqinfo.ini"))


def test_list_sequences_of_real_split() -> None:
    sequences = list_mot_sequences(fixture_path("mot17-mini/train"))
    assert [s.name for s in sequences] == [
        "MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-05-FRCNN", "MOT17-09-FRCNN",
        "MOT17-10-FRCNN", "MOT17-11-FRCNN", "MOT17-13-FRCNN",
    ]  # fmt: skip
    for seq in sequences:
        assert seq.gt_path.is_file()
        assert seq.det_path.is_file()
        assert seq.seqinfo_path.is_file()
        assert (seq.image_dir / "000001.jpg").is_file()


def test_list_sequences_of_folder_without_sequences(tmp_path: Path) -> None:
    (tmp_path / "not-a-sequence").mkdir()
    with pytest.raises(InvalidInputError, match="found none"):
        list_mot_sequences(tmp_path)
    with pytest.raises(InvalidInputError, match="no such folder"):
        list_mot_sequences(tmp_path / "absent")
