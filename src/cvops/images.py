"""Reading and writing images, with one clear error for every way a file can be bad."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from cvops.errors import ImageReadError, ImageTooLargeError

ImageArray = npt.NDArray[np.uint8]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"


def decode_image(data: bytes, source: str, max_pixels: int | None = None) -> ImageArray:
    """Decode encoded image bytes into a BGR (H, W, 3) uint8 array.

    Args:
        data: The encoded file content (JPEG, PNG, BMP, WebP, TIFF).
        source: What to name in an error: a path or a request field.
        max_pixels: Refuse images whose header declares more pixels than this, before
            decoding them (a small file can declare a huge image).

    Raises:
        ImageReadError: For empty, truncated or undecodable data.
        ImageTooLargeError: For an image larger than ``max_pixels``.
    """
    if not data:
        raise ImageReadError(f"{source}: empty file, expected an encoded image")
    # Decoders fill a truncated image with gray and only warn, so look for the end marker.
    if data.startswith(_JPEG_START) and _JPEG_END not in data[-64:]:
        raise ImageReadError(f"{source}: truncated JPEG (no end-of-image marker)")
    if data.startswith(_PNG_START) and b"IEND" not in data[-16:]:
        raise ImageReadError(f"{source}: truncated PNG (no IEND chunk)")
    if max_pixels is not None:
        _check_declared_size(data, source, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageReadError(f"{source}: not a decodable image (JPEG, PNG, BMP, WebP or TIFF)")
    return np.asarray(image, dtype=np.uint8)


def _check_declared_size(data: bytes, source: str, max_pixels: int) -> None:
    """Read only the header's width and height (Pillow parses headers lazily)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except (UnidentifiedImageError, OSError, ImportError) as error:
        # ImportError: ultralytics, once imported, patches Image.open to fetch a HEIF plugin for
        # files Pillow cannot identify, which fails offline with ModuleNotFoundError.
        raise ImageReadError(f"{source}: not a decodable image (JPEG, PNG, BMP, WebP or TIFF)") from error
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"{source}: image exceeds {max_pixels} pixels") from error
    if width * height == 0:
        raise ImageReadError(f"{source}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{source}: {width}x{height} pixels exceeds the limit of {max_pixels}")


def read_image(path: Path) -> ImageArray:
    """Read an image file into a BGR (H, W, 3) uint8 array.

    Raises:
        ImageReadError: When the file is missing, unreadable, empty, truncated or not an image.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise ImageReadError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise ImageReadError(f"{path}: is a folder, expected an image file") from error
    except PermissionError as error:
        raise ImageReadError(f"{path}: permission denied") from error
    return decode_image(data, str(path))


def write_image(path: Path, image: ImageArray) -> None:
    """Write a BGR image; the format follows the file suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise ImageReadError(f"{path}: OpenCV could not write an image with this suffix")


def list_images(paths: list[Path]) -> list[Path]:
    """Expand folders into the image files they hold (sorted); keep files as given.

    Raises:
        ImageReadError: When a path does not exist or a folder holds no image.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageReadError(f"{path}: folder holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise ImageReadError(f"{path}: no such file or folder")
    return files
