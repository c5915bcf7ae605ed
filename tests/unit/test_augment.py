"""Training augmentation: identity, exact flips, boxes kept inside and aligned, seeds, bad input."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from cvops.data.augment import AugmentConfig, Augmenter, build_augmentation
from cvops.errors import InvalidInputError

WIDTH, HEIGHT = 160, 120
BOXES = np.array([[10, 10, 50, 40], [70.5, 20.25, 110, 90], [120, 60, 155, 115]], np.float32)
CLASSES = np.array([0, 1, 2], np.int64)
COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # BGR of classes 0, 1, 2


def _build(config: AugmentConfig) -> Augmenter:
    pytest.importorskip("albumentations", reason="augmentation needs the train extra (albumentations)")
    return build_augmentation(config)


def _scene() -> np.ndarray:
    """Each box filled with its class's color on a textured gray background."""
    rng = np.random.default_rng(0)
    image = rng.integers(90, 140, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    for box, class_id in zip(BOXES.astype(int).tolist(), CLASSES.tolist(), strict=True):
        cv2.rectangle(image, (box[0], box[1]), (box[2] - 1, box[3] - 1), COLORS[class_id], -1)
    return image


def _only(**changes: object) -> AugmentConfig:
    """All families off except the changes given."""
    return replace(AugmentConfig.disabled(seed=7), **changes)  # type: ignore[arg-type]


def test_identity_config_returns_the_input() -> None:
    image = _scene()
    augmenter = build_augmentation(AugmentConfig.disabled())
    out_image, out_boxes, out_classes = augmenter(image, BOXES, CLASSES)
    np.testing.assert_array_equal(out_image, image)
    assert out_image is not image
    np.testing.assert_array_equal(out_boxes, BOXES)
    np.testing.assert_array_equal(out_classes, CLASSES)
    assert out_boxes.dtype == np.float32
    assert out_classes.dtype == np.int64


def test_identity_clips_boxes_that_overhang_the_image() -> None:
    augmenter = build_augmentation(AugmentConfig.disabled())
    _, boxes, _ = augmenter(_scene(), [[-5, -3, 20, 20], [150, 100, 170, 130]], [0, 1])
    np.testing.assert_array_equal(boxes, [[0, 0, 20, 20], [150, 100, WIDTH, HEIGHT]])


def test_flip_mirrors_boxes_exactly() -> None:
    image = _scene()
    out_image, boxes, classes = _build(_only(is_flip_enabled=True, flip_p=1.0))(image, BOXES, CLASSES)
    expected = np.stack([WIDTH - BOXES[:, 2], BOXES[:, 1], WIDTH - BOXES[:, 0], BOXES[:, 3]], axis=1)
    np.testing.assert_allclose(boxes, expected, atol=1e-4)  # albumentations normalizes to [0, 1] and back
    np.testing.assert_array_equal(classes, CLASSES)
    np.testing.assert_array_equal(out_image, image[:, ::-1])


def test_zoom_clips_boxes_and_drops_those_mostly_outside() -> None:
    config = _only(
        is_affine_enabled=True, affine_p=1.0, scale_range=(2.0, 2.0), translate_fraction=0.0, rotate_deg=0.0
    )
    boxes_in = [[70, 50, 90, 70], [0, 0, 30, 30], [30, 40, 60, 80]]  # center, corner, left half
    _, boxes, classes = _build(config)(_scene(), boxes_in, [0, 1, 2])
    # 2x about the center (80, 60): the corner box keeps 10x10 of 60x60 (< min_visibility 0.3).
    np.testing.assert_allclose(boxes, [[60, 40, 100, 80], [0, 20, 40, 100]], atol=0.5)
    np.testing.assert_array_equal(classes, [0, 2])


@pytest.mark.parametrize("seed", range(12))
def test_random_config_keeps_boxes_inside_and_aligned(seed: int) -> None:
    # Geometry only, so each box's center must still show its class's color.
    config = replace(
        AugmentConfig(seed=seed, affine_p=1.0, translate_fraction=0.3, rotate_deg=10.0),
        is_brightness_contrast_enabled=False,
        is_hue_saturation_enabled=False,
        is_blur_enabled=False,
        is_motion_blur_enabled=False,
        is_noise_enabled=False,
        is_jpeg_enabled=False,
    )
    out_image, boxes, classes = _build(config)(_scene(), BOXES, CLASSES)
    assert boxes.shape == (classes.shape[0], 4)
    assert set(classes.tolist()) <= {0, 1, 2}
    assert len(set(classes.tolist())) == len(classes)
    assert (boxes >= 0).all()
    assert (boxes[:, [0, 2]] <= WIDTH).all()
    assert (boxes[:, [1, 3]] <= HEIGHT).all()
    assert (boxes[:, 2] > boxes[:, 0]).all()
    assert (boxes[:, 3] > boxes[:, 1]).all()
    for box, class_id in zip(boxes.tolist(), classes.tolist(), strict=True):
        x, y = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        np.testing.assert_allclose(out_image[y, x], COLORS[class_id], atol=40)


@pytest.mark.parametrize("seed", range(8))
def test_default_config_keeps_outputs_well_formed(seed: int) -> None:
    config = AugmentConfig(
        seed=seed, **{name: 1.0 for name in ("affine_p", "blur_p", "motion_blur_p", "noise_p", "jpeg_p")}
    )
    image = _scene()
    out_image, boxes, classes = _build(config)(image, BOXES, CLASSES)
    assert out_image.shape == image.shape
    assert out_image.dtype == np.uint8
    assert boxes.dtype == np.float32
    assert classes.dtype == np.int64
    assert boxes.shape == (classes.shape[0], 4)
    assert ((boxes >= 0) & (boxes <= [WIDTH, HEIGHT, WIDTH, HEIGHT])).all()


def test_output_never_aliases_the_input() -> None:
    image = _scene()
    out_image, _, _ = _build(_only(is_flip_enabled=True, flip_p=0.0))(image, BOXES, CLASSES)
    np.testing.assert_array_equal(out_image, image)
    assert not np.shares_memory(out_image, image)


def test_no_boxes_in_no_boxes_out() -> None:
    _, boxes, classes = _build(AugmentConfig(seed=1))(_scene(), np.zeros((0, 4)), np.zeros(0, np.int64))
    assert boxes.shape == (0, 4)
    assert classes.shape == (0,)


def test_same_seed_same_output() -> None:
    image = _scene()
    config = AugmentConfig(seed=3, affine_p=1.0, noise_p=1.0)
    first, second, other = _build(config), _build(config), _build(replace(config, seed=4))
    for _ in range(3):  # the whole sequence repeats, not only the first call
        a, b, c = first(image, BOXES, CLASSES), second(image, BOXES, CLASSES), other(image, BOXES, CLASSES)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])
        assert not np.array_equal(a[0], c[0])
    first.reseed(3)
    fresh = _build(config)
    np.testing.assert_array_equal(first(image, BOXES, CLASSES)[0], fresh(image, BOXES, CLASSES)[0])


@pytest.mark.parametrize(
    ("image", "xyxy", "class_ids", "match"),
    [
        ([[0, 0, 0]], [[1, 1, 5, 5]], [0], "image"),
        (np.zeros((HEIGHT, WIDTH), np.uint8), [[1, 1, 5, 5]], [0], "image"),
        (None, [[1, 1, 5]], [0], r"shape \(N, 4\)"),
        (None, [[1, 1, 5, 5]], [0, 1], "class_ids"),
        (None, [[1, 1, 5, 5]], [0.5], "class_ids"),
        (None, [[1, np.nan, 5, 5]], [0], "finite"),
        (None, [[5, 1, 1, 5]], [0], "x2 > x1"),
        (None, [[1, 1, 5, 1]], [0], "x2 > x1"),
        (None, [[200, 10, 220, 20]], [0], "overlapping"),
    ],
    ids=[
        "not_array",
        "grayscale",
        "three_columns",
        "ids_length",
        "float_ids",
        "nan",
        "x2_lt_x1",
        "zero_h",
        "outside",
    ],
)
def test_invalid_input_is_rejected(image: object, xyxy: object, class_ids: object, match: str) -> None:
    if image is None:
        image = _scene()
    for config in (AugmentConfig.disabled(), AugmentConfig(seed=0)):
        augmenter = build_augmentation(config) if config.is_identity else _build(config)
        with pytest.raises(InvalidInputError, match=match):
            augmenter(image, xyxy, class_ids)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"flip_p": 1.5}, "flip_p"),
        ({"min_visibility": -0.1}, "min_visibility"),
        ({"scale_range": (1.2, 0.8)}, "scale_range"),
        ({"jpeg_quality_range": (0, 90)}, "jpeg_quality_range"),
        ({"blur_max_kernel": 4}, "blur_max_kernel"),
        ({"rotate_deg": 200.0}, "rotate_deg"),
    ],
    ids=["p", "visibility", "scale_order", "jpeg", "even_kernel", "rotate"],
)
def test_config_rejects_out_of_range_values(changes: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        AugmentConfig(**changes)  # type: ignore[arg-type]


def test_disabled_is_identity_and_default_is_not() -> None:
    assert AugmentConfig.disabled().is_identity
    assert not AugmentConfig().is_identity
    assert not _only(is_jpeg_enabled=True).is_identity
