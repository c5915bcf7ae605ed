"""Ultralytics patches ``PIL.Image.open`` when imported; junk must still give our errors, not ImportError."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.data.formats import read_image_size
from cvops.errors import DatasetError, ImageReadError
from cvops.images import decode_image


@pytest.fixture(autouse=True)
def _ultralytics_patches_pillow() -> None:
    import ultralytics.utils.patches  # noqa: F401  (the import installs the patch)


def test_dataset_image_size_of_junk(tmp_path: Path) -> None:
    junk = tmp_path / "x.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="not a readable image"):
        read_image_size(junk, "labels/x.txt")


def test_decoding_junk_bytes() -> None:
    with pytest.raises(ImageReadError, match="not a decodable image"):
        decode_image(b"not an image", "request", max_pixels=1000)
