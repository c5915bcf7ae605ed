"""A deterministic synthetic detection dataset: colored shapes on textured backgrounds.

For demos and tests that need a model with real detections and no download: the same seed
always gives the same images and labels, in both YOLO and COCO formats.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True, slots=True)
class SyntheticDataset:
    """Where a generated dataset lies.

    Attributes:
        root: Dataset folder with ``images/{train,val}`` and ``labels/{train,val}``.
        data_yaml: Ultralytics dataset file.
        coco_val: COCO ground truth of the validation split.
        class_names: Class names, indexed by class id.
    """

    root: Path
    data_yaml: Path
    coco_val: Path
    class_names: tuple[str, ...]


def draw_background(rng: np.random.Generator, size: int) -> npt.NDArray[np.uint8]:
    """Low-frequency, low-saturation noise with grain: texture the model must learn to ignore."""
    coarse = rng.integers(40, 200, (rng.integers(3, 9), rng.integers(3, 9), 1), dtype=np.uint8)
    tint = rng.integers(-15, 16, (1, 1, 3), dtype=np.int16)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.int16)[..., None]
    grain = rng.integers(-10, 11, (size, size, 3), dtype=np.int16)
    return np.clip(smooth + tint + grain, 0, 255).astype(np.uint8)


def _draw(
    image: npt.NDArray[np.uint8], rng: np.random.Generator, class_id: int
) -> tuple[float, float, float, float]:
    """Draw one shape of random size, place and color; return its box (x1, y1, x2, y2) in pixels."""
    size = image.shape[0]
    side = int(rng.integers(size // 8, size // 2))
    x1 = int(rng.integers(0, size - side))
    y1 = int(rng.integers(0, size - side))
    draw_shape(image, class_id, x1, y1, side, random_color(rng))
    return float(x1), float(y1), float(x1 + side), float(y1 + side)


def random_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """Return a saturated color (one channel high, one low): it stands out from the gray background."""
    channels = rng.permutation(3)
    levels = np.empty(3, np.int64)
    levels[channels] = (int(rng.integers(200, 256)), int(rng.integers(0, 60)), int(rng.integers(0, 256)))
    return int(levels[0]), int(levels[1]), int(levels[2])


def draw_shape(
    image: npt.NDArray[np.uint8], class_id: int, x1: int, y1: int, side: int, color: tuple[int, int, int]
) -> None:
    """Draw shape ``class_id`` (an index of :data:`SHAPE_NAMES`) filling the square at ``x1, y1``."""
    if class_id == 0:
        cv2.circle(image, (x1 + side // 2, y1 + side // 2), side // 2, color, -1, cv2.LINE_AA)
    elif class_id == 1:
        cv2.rectangle(image, (x1, y1), (x1 + side, y1 + side), color, -1)
    else:
        points = np.array([[x1 + side // 2, y1], [x1, y1 + side], [x1 + side, y1 + side]], np.int32)
        cv2.fillPoly(image, [points], color, cv2.LINE_AA)


Box = tuple[int, float, float, float, float]  # class id, x1, y1, x2, y2 in pixels


def yolo_label_text(rows: Sequence[Box], image_size: int) -> str:
    """Return a YOLO label file's text for boxes of a square image ``image_size`` pixels wide."""
    return "".join(
        f"{c} {(a + b) / 2 / image_size:.6f} {(y + z) / 2 / image_size:.6f} "
        f"{(b - a) / image_size:.6f} {(z - y) / image_size:.6f}\n"
        for c, a, y, b, z in rows
    )


def coco_ground_truth(images: Sequence[tuple[str, Sequence[Box]]], image_size: int) -> dict[str, Any]:
    """Return COCO ground truth of square images: ``(file_name, boxes)`` each, ids from 1 in order."""
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(SHAPE_NAMES)],
    }
    for image_id, (file_name, rows) in enumerate(images, start=1):
        coco["images"].append(
            {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for c, a, y, b, z in rows:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": c + 1,
                    "bbox": [a, y, b - a, z - y],
                    "area": (b - a) * (z - y),
                    "iscrowd": 0,
                }
            )
    return coco


def generate_scenes(
    out_dir: Path, train_count: int = 160, val_count: int = 40, image_size: int = 160, seed: int = 0
) -> SyntheticDataset:
    """Write a synthetic dataset of circles, squares and triangles (1 to 4 per image).

    Later shapes may partly cover earlier ones (occlusion); sizes span 1/8 to 1/2 of the image.

    Args:
        out_dir: Folder to write; files already there are overwritten.
        train_count: Images in the training split.
        val_count: Images in the validation split.
        image_size: Side of the square images in pixels.
        seed: Random seed; the same seed writes the same bytes.
    """
    if train_count < 1 or val_count < 1 or image_size < 32:
        raise InvalidInputError(
            f"expected train_count, val_count >= 1 and image_size >= 32, got "
            f"{train_count}, {val_count}, {image_size}"
        )
    rng = np.random.default_rng(seed)
    val_images: list[tuple[str, list[Box]]] = []
    for split, count in (("train", train_count), ("val", val_count)):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = draw_background(rng, image_size)
            rows: list[Box] = []
            for _ in range(int(rng.integers(1, 5))):
                class_id = int(rng.integers(0, len(SHAPE_NAMES)))
                x1, y1, x2, y2 = _draw(image, rng, class_id)
                rows.append((class_id, x1, y1, x2, y2))
            stem = f"{split}_{index:05d}"
            cv2.imwrite(str(out_dir / "images" / split / f"{stem}.png"), image)
            (out_dir / "labels" / split / f"{stem}.txt").write_text(yolo_label_text(rows, image_size))
            if split == "val":
                val_images.append((f"images/val/{stem}.png", rows))
    coco = coco_ground_truth(val_images, image_size)
    coco_val = out_dir / "annotations_coco_val.json"
    coco_val.write_text(json.dumps(coco))
    data_yaml = out_dir / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(SHAPE_NAMES))
    data_yaml.write_text(
        f"path: {out_dir.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return SyntheticDataset(out_dir, data_yaml, coco_val, SHAPE_NAMES)
