from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cvops.errors import ImageReadError
from cvops.images import list_images, read_image


def _jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((32, 48, 3), 128, np.uint8))
    assert ok
    return bytes(data)


def _png() -> bytes:
    ok, data = cv2.imencode(".png", np.full((32, 48, 3), 128, np.uint8))
    assert ok
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jpg", b"", "empty file"),
        ("truncated.jpg", _jpeg()[:200], "truncated JPEG"),
        ("truncated.png", _png()[:60], "truncated PNG"),
        ("notes.jpg", b"this is a text file, not an image\n", "not a decodable image"),
        ("corrupt.jpg", b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9", "not a decodable image"),
    ],
    ids=["empty", "truncated-jpeg", "truncated-png", "text-file", "corrupt-jpeg"],
)
def test_bad_image_file_gives_one_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as error:
        read_image(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_good_images_decode_to_bgr_uint8(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    (tmp_path / "b.png").write_bytes(_png())
    (tmp_path / "skip.txt").write_text("x")
    files = list_images([tmp_path])
    assert [f.name for f in files] == ["a.jpg", "b.png"]
    for file in files:
        image = read_image(file)
        assert image.shape == (32, 48, 3)
        assert image.dtype == np.uint8


def test_list_images_reports_empty_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="holds no image"):
        list_images([tmp_path])
    with pytest.raises(ImageReadError, match="no such file or folder"):
        list_images([tmp_path / "nope"])


def test_declared_size_above_the_pixel_limit_is_refused_before_decoding() -> None:
    from cvops.errors import ImageTooLargeError
    from cvops.images import decode_image

    data = _png()  # 48 x 32 = 1536 pixels
    assert decode_image(data, "req", max_pixels=1536).shape == (32, 48, 3)
    with pytest.raises(ImageTooLargeError, match=r"req: 48x32 pixels exceeds the limit of 1535"):
        decode_image(data, "req", max_pixels=1535)
