"""Synthetic drift: brightness, blur and noise perturbations of frames, to prove a drift check fires.

A drift monitor that never fires looks the same as one that works on quiet data; feeding it
perturbed copies of real frames (a darker evening, a dirty lens, a noisy sensor) shows it fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError
from cvops.images import read_image, write_image

Perturbation = Literal["brightness", "blur", "noise"]
"""``brightness``: add ``strength`` gray levels (negative darkens). ``blur``: Gaussian blur with
sigma ``strength`` pixels. ``noise``: add Gaussian noise of standard deviation ``strength``."""

PERTURBATIONS: tuple[str, ...] = get_args(Perturbation)


def perturb_image(
    image: npt.NDArray[np.uint8], kind: Perturbation, strength: float, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """Return a perturbed copy of a BGR (H, W, 3) uint8 image.

    Raises:
        InvalidInputError: For an unknown kind, or a blur or noise strength <= 0.
    """
    if kind not in PERTURBATIONS:
        raise InvalidInputError(f"perturbation: expected one of {PERTURBATIONS}, got {kind!r}")
    if kind != "brightness" and strength <= 0:
        raise InvalidInputError(f"{kind} strength: expected > 0, got {strength}")
    pixels: npt.NDArray[np.float32] = image.astype(np.float32)
    if kind == "brightness":
        pixels = pixels + np.float32(strength)
    elif kind == "blur":
        pixels = np.asarray(cv2.GaussianBlur(pixels, (0, 0), sigmaX=strength), np.float32)
    else:
        pixels = pixels + rng.normal(0.0, strength, size=pixels.shape).astype(np.float32)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def perturb_frames(
    paths: Sequence[Path], out_dir: Path, kind: Perturbation, strength: float, *, seed: int = 0
) -> list[Path]:
    """Write perturbed copies of frames into ``out_dir`` as PNG (lossless); return their paths.

    Raises:
        ImageReadError: For an unreadable frame.
        InvalidInputError: For a bad perturbation (see :func:`perturb_image`).
    """
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    for index, path in enumerate(paths):
        target = out_dir / f"{index:06d}_{path.stem}.png"
        write_image(target, perturb_image(read_image(path), kind, strength, rng))
        written.append(target)
    return written


def write_video_frames(video: Path, out_dir: Path, stride: int = 1) -> list[Path]:
    """Write every ``stride``-th frame of ``video`` to ``out_dir`` as lossless PNG; return the paths.

    Drift inputs are image folders: this turns a video window into one.

    Raises:
        InvalidInputError: For a stride < 1 or a video that yields no frame.
    """
    if stride < 1:
        raise InvalidInputError(f"stride: expected >= 1, got {stride}")
    out_dir.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    written: list[Path] = []
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if index % stride == 0:
                path = out_dir / f"{index:06d}.png"
                cv2.imwrite(str(path), image)
                written.append(path)
            index += 1
    finally:
        capture.release()
    if not written:
        raise InvalidInputError(f"{video}: no frame could be read")
    return written
