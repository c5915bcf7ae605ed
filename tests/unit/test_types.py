from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cvops.detection.types import Detections
from cvops.errors import InvalidDetectionsError
from tests.conftest import dets

F32, I64 = np.float32, np.int64


def _record(**overrides: object) -> Detections:
    fields: dict[str, object] = {
        "xyxy": np.array([[0, 0, 10, 10]], F32),
        "scores": np.array([0.5], F32),
        "class_ids": np.array([1], I64),
        "class_names": ("b",),
    }
    fields.update(overrides)
    return Detections(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"xyxy": np.array([[0, 0, 10]], F32)}, "shape"),
        ({"xyxy": np.array([[0, 0, 10, 10]], np.float64)}, "dtype float32"),
        ({"xyxy": [[0, 0, 10, 10]]}, "numpy array"),
        ({"xyxy": np.array([[10, 0, 0, 10]], F32)}, "x2 >= x1"),
        ({"xyxy": np.array([[0, 0, np.nan, 10]], F32)}, "finite"),
        ({"scores": np.array([1.5], F32)}, r"\[0, 1\]"),
        ({"scores": np.array([0.5, 0.5], F32)}, "1 rows"),
        ({"class_ids": np.array([-1], I64)}, ">= 0"),
        ({"class_ids": np.array([1], np.int32)}, "dtype int64"),
        ({"class_names": ()}, "expected 1 names"),
        ({"track_ids": np.array([1, 2], I64)}, "track_ids"),
        ({"embeddings": np.zeros((1, 8), np.float64)}, "embeddings"),
        ({"class_scores": np.full((2, 3), 0.5, F32)}, "class_scores: expected 1 rows, got 2"),
        ({"class_scores": np.full((3,), 0.5, F32)}, "class_scores: expected 2 dimensions, got 1"),
        ({"class_scores": np.zeros((1, 0), F32)}, r"class_scores: expected shape \(N, C\) with C >= 1"),
        ({"class_scores": np.full((1, 3), 0.5)}, "class_scores: expected dtype float32, got float64"),
        ({"class_scores": [[0.5, 0.5]]}, "class_scores: expected a numpy array, got list"),
        ({"class_scores": np.array([[0.5, 1.5]], F32)}, r"class_scores: expected values in \[0, 1\]"),
        ({"class_scores": np.array([[-0.1, 0.5]], F32)}, r"class_scores: expected values in \[0, 1\]"),
        ({"class_scores": np.array([[np.nan, 0.5]], F32)}, r"class_scores: expected values in \[0, 1\]"),
    ],
    ids=[
        "xyxy-3-cols", "xyxy-float64", "xyxy-list", "x2-before-x1", "nan-box", "score-above-1",
        "scores-length", "negative-class", "class-int32", "names-length", "track-length", "emb-dtype",
        "cls-scores-rows", "cls-scores-1d", "cls-scores-no-class", "cls-scores-float64", "cls-scores-list",
        "cls-score-above-1", "cls-score-negative", "cls-score-nan",
    ],
)  # fmt: skip
def test_invalid_record_is_rejected_with_what_was_expected(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidDetectionsError, match=message):
        _record(**overrides)


def test_empty_record_has_zero_length_and_valid_shapes() -> None:
    empty = Detections.empty()
    assert len(empty) == 0
    assert empty.xyxy.shape == (0, 4)


def test_from_arrays_names_each_box_and_rejects_unknown_class() -> None:
    record = dets([[0, 0, 1, 1], [2, 2, 3, 3]], class_ids=[2, 0])
    assert record.class_names == ("c", "a")
    with pytest.raises(InvalidDetectionsError, match=r"\[0, 3\)"):
        dets([[0, 0, 1, 1]], class_ids=[3])


@pytest.mark.parametrize(
    ("index", "expected_scores"),
    [
        (np.array([True, False, True]), [0.1, 0.3]),
        (np.array([2, 0]), [0.3, 0.1]),
        (np.array([], np.int64), []),
    ],
    ids=["mask", "index-order", "none"],
)
def test_select_keeps_every_field_aligned(index: np.ndarray, expected_scores: list[float]) -> None:
    record = dets([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], scores=[0.1, 0.2, 0.3], class_ids=[0, 1, 2])
    record = record.with_track_ids(np.array([7, 8, 9], I64)).with_embeddings(np.eye(3, dtype=F32))
    record = replace(record, class_scores=np.array([[0.1, 0.0], [0.0, 0.2], [0.3, 0.0]], F32))
    picked = record.select(index)
    np.testing.assert_allclose(picked.scores, expected_scores)
    assert picked.track_ids is not None
    assert picked.embeddings is not None
    assert picked.class_scores is not None
    assert len(picked.class_names) == len(picked.track_ids) == len(picked.embeddings) == len(expected_scores)
    np.testing.assert_allclose(picked.class_scores.max(axis=1), expected_scores)
    if len(picked):
        assert picked.class_names[0] == {0.1: "a", 0.3: "c"}[round(float(picked.scores[0]), 1)]


def test_from_arrays_takes_class_scores_as_float32_and_defaults_to_none() -> None:
    assert dets([[0, 0, 1, 1]]).class_scores is None
    assert Detections.empty().class_scores is None
    record = Detections.from_arrays([[0, 0, 1, 1]], [0.9], [1], ("a", "b"), class_scores=[[0.2, 0.9]])
    assert record.class_scores is not None
    assert record.class_scores.dtype == F32
    np.testing.assert_allclose(record.class_scores, [[0.2, 0.9]])
    empty = Detections.from_arrays(np.zeros((0, 4)), [], [], ("a", "b"), class_scores=np.zeros((0, 2)))
    assert empty.class_scores is not None
    assert empty.class_scores.shape == (0, 2)


def test_copies_with_more_fields_keep_the_class_scores() -> None:
    class_scores = np.array([[0.9, 0.1, 0.0]], F32)
    record = _record(class_scores=class_scores)
    copies = [
        record.with_track_ids(np.array([3], I64)),
        record.with_tracks(np.array([3], I64), np.zeros((1, 2), F32), np.zeros((1, 4), F32)),
        record.with_global_ids(np.array([5], I64)),
        record.with_embeddings(np.ones((1, 4), F32)),
        record.select(np.array([True])),
    ]
    for copy in copies:
        assert copy.class_scores is not None
        np.testing.assert_array_equal(copy.class_scores, class_scores)
