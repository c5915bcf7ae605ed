from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from cvops.config import DetectorSettings
from cvops.detection.decoders import Candidates, YoloxDecoder, make_decoder
from cvops.detection.postprocess import finalize
from cvops.detection.preprocess import LetterboxTransform
from cvops.errors import ModelPackageError


def test_ultralytics_decoder_reads_cxcywh_and_best_class() -> None:
    output = np.zeros((1, 4 + 3, 5), np.float32)
    output[0, :4, 2] = [50, 40, 20, 10]  # anchor 2: box centered at (50, 40)
    output[0, 4:, 2] = [0.1, 0.8, 0.3]
    output[0, 4:, 4] = [0.2, 0.0, 0.0]  # below threshold
    (candidates,) = make_decoder("yolov8", 3, 64, 64)(output, 0.25)
    np.testing.assert_allclose(candidates.xyxy, [[40, 35, 60, 45]])
    assert candidates.class_ids.tolist() == [1]
    assert candidates.scores.tolist() == pytest.approx([0.8])


def test_rtdetr_decoder_scales_normalized_boxes_and_needs_no_nms() -> None:
    output = np.zeros((2, 4, 6), np.float32)
    output[1, 3] = [0.5, 0.5, 0.5, 0.25, 0.9, 1.0]
    output[1, 2] = [0.5, 0.5, 0.5, 0.25, 0.2, 0.0]  # below threshold
    decoder = make_decoder("rtdetr", 2, 100, 200)
    first, second = decoder(output, 0.5)
    assert decoder.needs_nms is False
    assert len(first.scores) == 0
    np.testing.assert_allclose(second.xyxy, [[50, 37.5, 150, 62.5]])
    assert second.class_ids.tolist() == [1]


def test_yolox_decoder_applies_grid_stride_and_objectness() -> None:
    decoder = YoloxDecoder(num_classes=2, input_height=64, input_width=64)
    anchors = (64 // 8) ** 2 + (64 // 16) ** 2 + (64 // 32) ** 2
    output = np.zeros((1, anchors, 5 + 2), np.float32)
    row = 8 * 2 + 3  # stride 8, grid x=3, y=2
    output[0, row] = [0.5, 0.5, np.log(2.0), np.log(4.0), 0.9, 0.2, 0.5]
    (candidates,) = decoder(output, 0.3)
    cx, cy, w, h = (3 + 0.5) * 8, (2 + 0.5) * 8, 2 * 8, 4 * 8
    np.testing.assert_allclose(candidates.xyxy, [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], rtol=1e-6)
    assert candidates.scores.tolist() == pytest.approx([0.45])
    assert candidates.class_ids.tolist() == [1]


@pytest.mark.parametrize(
    ("family", "shape", "message"),
    [
        ("yolov8", (1, 10, 20), "yolov8/yolo11"),
        ("rtdetr", (1, 20, 10), "rtdetr"),
        ("yolox", (1, 7, 7), "yolox"),
        ("yolo-cls", (1, 3), "detector family"),
    ],
    ids=["yolov8-wrong-classes", "rtdetr-wrong-layout", "yolox-wrong-anchors", "classifier-family"],
)
def test_wrong_output_shape_or_family_names_what_was_expected(
    family: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ModelPackageError, match=message):
        make_decoder(family, 2, 64, 64)(np.zeros(shape, np.float32), 0.5)


def test_rtdetr_class_index_outside_the_vocabulary_is_reported() -> None:
    output = np.array([[[0.5, 0.5, 0.1, 0.1, 0.9, 7.0]]], np.float32)
    with pytest.raises(ModelPackageError, match=r"class indices in \[0, 2\)"):
        make_decoder("rtdetr", 2, 64, 64)(output, 0.5)


def test_ultralytics_decoder_keeps_every_class_score_of_the_kept_anchors() -> None:
    output = np.zeros((1, 4 + 3, 5), np.float32)
    output[0, :4, :] = [[50], [40], [20], [10]]
    output[0, 4:, 1] = [0.6, 0.5, 0.1]
    output[0, 4:, 3] = [0.0, 0.2, 0.9]
    output[0, 4:, 4] = [0.2, 0.1, 0.0]  # below threshold: not sliced
    (candidates,) = make_decoder("yolo11", 3, 64, 64)(output, 0.25)
    assert candidates.class_scores is not None
    assert candidates.class_scores.dtype == np.float32
    expected = np.array([[0.6, 0.5, 0.1], [0.0, 0.2, 0.9]], np.float32)  # anchors 1 and 3, as given
    np.testing.assert_array_equal(candidates.class_scores, expected)
    np.testing.assert_array_equal(candidates.class_scores.argmax(axis=1), candidates.class_ids)


def test_yolox_decoder_class_scores_are_objectness_times_class_scores() -> None:
    decoder = YoloxDecoder(num_classes=2, input_height=64, input_width=64)
    anchors = (64 // 8) ** 2 + (64 // 16) ** 2 + (64 // 32) ** 2
    output = np.zeros((1, anchors, 5 + 2), np.float32)
    output[0, 5] = [0.5, 0.5, 0.0, 0.0, 0.9, 0.2, 0.5]
    output[0, 9] = [0.5, 0.5, 0.0, 0.0, 0.5, 0.8, 0.4]
    output[0, 20] = [0.5, 0.5, 0.0, 0.0, 0.1, 0.9, 0.9]  # 0.09 after objectness: dropped
    (candidates,) = decoder(output, 0.3)
    assert candidates.class_scores is not None
    assert candidates.class_scores.dtype == np.float32
    np.testing.assert_allclose(candidates.class_scores, [[0.18, 0.45], [0.4, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(candidates.class_scores.max(axis=1), candidates.scores)


def test_rtdetr_decoder_has_no_class_scores() -> None:
    output = np.array([[[0.5, 0.5, 0.1, 0.1, 0.9, 1.0]]], np.float32)
    (candidates,) = make_decoder("rtdetr", 2, 64, 64)(output, 0.5)
    assert len(candidates.scores) == 1
    assert candidates.class_scores is None


IDENTITY = LetterboxTransform(1.0, 1.0, 0.0, 0.0, 100, 100)


def _candidates(class_scores: npt.NDArray[np.float32] | None) -> Candidates:
    """Three boxes: box 1 overlaps box 0 (same class, lower score), box 2 stands alone."""
    return Candidates(
        xyxy=np.array([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60]], np.float32),
        scores=np.array([0.8, 0.7, 0.9], np.float32),
        class_ids=np.array([0, 0, 1], np.int64),
        class_scores=class_scores,
    )


@pytest.mark.parametrize(
    ("needs_nms", "expected_rows"),
    [(True, [2, 0]), (False, [2, 0, 1])],
    ids=["nms-drops-the-overlap", "nms-free-sorts-by-score"],
)
def test_finalize_keeps_the_class_score_rows_of_the_kept_boxes(
    needs_nms: bool, expected_rows: list[int]
) -> None:
    rows = np.array([[0.8, 0.1], [0.7, 0.3], [0.2, 0.9]], np.float32)
    (found,) = finalize([_candidates(rows)], [IDENTITY], ("a", "b"), DetectorSettings(), needs_nms)
    assert found.class_scores is not None
    np.testing.assert_array_equal(found.class_scores, rows[expected_rows])
    np.testing.assert_array_equal(found.scores, _candidates(None).scores[expected_rows])


def test_finalize_without_class_scores_gives_none() -> None:
    (found,) = finalize([_candidates(None)], [IDENTITY], ("a", "b"), DetectorSettings(), True)
    assert len(found) == 2
    assert found.class_scores is None
