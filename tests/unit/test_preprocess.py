from __future__ import annotations

import numpy as np
import pytest

from cvops.contracts.model_package import PreprocessingSpec, ResizeMode
from cvops.detection.preprocess import preprocess, resize_image, to_tensor
from cvops.errors import InvalidInputError

MODES: list[ResizeMode] = ["letterbox_center", "letterbox_top_left", "stretch", "center_crop"]
SHAPES = [(480, 640), (1080, 810), (100, 100), (37, 411)]


def _image(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_to_original_is_the_exact_inverse_of_to_input(mode: ResizeMode, shape: tuple[int, int]) -> None:
    out, transform = resize_image(_image(*shape), 320, 320, mode)
    assert out.shape == (320, 320, 3)
    boxes = np.array([[0, 0, shape[1], shape[0]], [3.5, 7.25, 20, 30]], np.float32)
    back = transform.to_original(transform.to_input(boxes), clip=False)
    np.testing.assert_allclose(back, boxes, atol=1e-3)


@pytest.mark.parametrize(
    ("mode", "first_row_is_pad", "last_row_is_pad"),
    [("letterbox_center", True, True), ("letterbox_top_left", False, True)],
    ids=["center-pads-both-sides", "top-left-pads-bottom"],
)
def test_letterbox_pads_where_its_family_expects(
    mode: ResizeMode, first_row_is_pad: bool, last_row_is_pad: bool
) -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    out, transform = resize_image(image, 320, 320, mode, pad_value=114)
    assert (out[0] == 114).all() == first_row_is_pad
    assert (out[-1] == 114).all() == last_row_is_pad
    assert transform.scale_x == pytest.approx(1.6)


def test_letterbox_center_matches_ultralytics_pixels() -> None:
    pytest.importorskip("ultralytics")
    from ultralytics.data.augment import LetterBox

    image = _image(1080, 810)
    ours, _ = resize_image(image, 640, 640, "letterbox_center", 114)
    theirs = LetterBox(new_shape=(640, 640), auto=False, stride=32)(image=image)
    np.testing.assert_array_equal(ours, theirs)


def test_to_tensor_fast_path_equals_plain_numpy() -> None:
    images = [_image(64, 64), _image(64, 64)]
    spec = PreprocessingSpec(color="rgb", scale=1 / 255)
    expected = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_allclose(to_tensor(images, spec), expected, atol=1e-6)


def test_to_tensor_applies_mean_and_std_per_channel() -> None:
    image = np.full((2, 2, 3), (10, 20, 30), np.uint8)  # BGR
    spec = PreprocessingSpec(color="rgb", scale=1.0, mean=(30.0, 20.0, 10.0), std=(2.0, 4.0, 5.0))
    tensor = to_tensor([image], spec)
    np.testing.assert_allclose(tensor[0, :, 0, 0], [0.0, 0.0, 0.0])


def test_preprocess_batches_any_sizes() -> None:
    batch, transforms = preprocess([_image(480, 640), _image(50, 70)], 160, 160, PreprocessingSpec())
    assert batch.shape == (2, 3, 160, 160)
    assert batch.dtype == np.float32
    assert [t.original_width for t in transforms] == [640, 70]


def test_resize_rejects_non_color_images() -> None:
    with pytest.raises(InvalidInputError, match=r"\(H, W, 3\) uint8"):
        resize_image(np.zeros((10, 10), np.uint8), 32, 32, "stretch")
