"""Image statistics: brightness, contrast and blur move the way their names say."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cvops.features.image_stats import image_stats


def _checkerboard() -> np.ndarray:
    tile = np.kron([[0, 255] * 8, [255, 0] * 8] * 8, np.ones((8, 8))).astype(np.uint8)
    return np.dstack([tile] * 3)


def test_flat_gray_image_has_its_level_as_brightness_and_no_contrast_or_edges() -> None:
    stats = image_stats(np.full((32, 32, 3), 100, np.uint8))
    assert stats.brightness == pytest.approx(100.0)
    assert stats.contrast == pytest.approx(0.0)
    assert stats.blur_laplacian_var == pytest.approx(0.0)


def test_blurring_lowers_the_laplacian_variance() -> None:
    sharp = _checkerboard()
    blurred = cv2.GaussianBlur(sharp, (9, 9), 3)
    assert image_stats(blurred).blur_laplacian_var < 0.2 * image_stats(sharp).blur_laplacian_var


def test_gray_input_is_accepted_and_bad_shapes_are_refused() -> None:
    assert image_stats(np.zeros((4, 4), np.uint8)).brightness == 0.0
    with pytest.raises(ValueError, match="expected a"):
        image_stats(np.zeros((0, 4, 3), np.uint8))
