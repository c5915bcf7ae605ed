"""The unlabeled pools of the active-learning benchmark, with their hidden labels and test sets.

Two pools, both of ``cvops.data.synthetic`` shapes (circle, square, triangle) plus the 8 real
coco8 photos resized to the same size (real background frames: no shapes, empty ground truth):

- ``camera``: what a deployment's cameras record. A few fixed cameras (each its own
  background); each clip is one camera watching 0 to 4 shapes drift across the view for
  ``--clip-frames`` consecutive frames (a few pixels apart, fresh sensor noise and exposure
  each frame); a quarter of the clips hold nothing; classes are imbalanced (circles common,
  triangles rare). The test set is more clips of the same cameras and mix, one frame each.
- ``scenes``: independent random scenes (every frame its own background, 1 to 4 shapes,
  classes balanced) plus near-duplicate copies of a quarter of them; the test set is more
  independent scenes. There is little for a selection strategy to exploit here.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from detector_latency import FIXTURES_DIR

from cvops.data.synthetic import (
    SHAPE_NAMES,
    Box,
    coco_ground_truth,
    draw_background,
    draw_shape,
    generate_scenes,
    random_color,
    yolo_label_text,
)

POOLS = ("camera", "scenes")
CAMERAS = 6
EMPTY_CLIP_SHARE = 0.25
CLASS_SHARES = (0.6, 0.3, 0.1)
BASE_CLASS_SHARES = (0.5, 0.5, 0.0)
OBJECT_COUNTS = (1, 2, 3, 4)
STEP_PX = 4.0  # largest drift of a shape between consecutive frames, per axis
Frame = dict[str, Any]


def build_pool(root: Path, args: argparse.Namespace) -> tuple[dict[str, Frame], Path]:
    """Write the pool's images and hidden labels; return stem -> frame record and the test set's COCO file.

    A frame record holds ``image`` (path), ``label`` (YOLO lines), ``kind`` (``scene``,
    ``duplicate``, ``clip`` or ``coco8``) and ``group``: frames of one group show the same
    content (a clip's frames, a scene and its copies); None for coco8.
    """
    pool_dir = root / "pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    if args.pool == "camera":
        pool, test_gt = _camera_pool(root, pool_dir, args)
    else:
        pool, test_gt = _scene_pool(root, pool_dir, args)
    for photo in sorted((FIXTURES_DIR / "coco8" / "images").glob("*/*.jpg")):
        pixels = cv2.resize(cv2.imread(str(photo)), (args.imgsz, args.imgsz), interpolation=cv2.INTER_AREA)
        target = pool_dir / f"coco8_{photo.stem}.png"
        cv2.imwrite(str(target), pixels)
        pool[target.stem] = {"image": target, "label": "", "kind": "coco8", "group": None}
    return pool, test_gt


def _scene_pool(root: Path, pool_dir: Path, args: argparse.Namespace) -> tuple[dict[str, Frame], Path]:
    scenes = generate_scenes(
        root / "scenes",
        train_count=args.pool_size,
        val_count=args.test_size,
        image_size=args.imgsz,
        seed=1000,
    )
    pool: dict[str, Frame] = {}
    for image in sorted((scenes.root / "images" / "train").glob("*.png")):
        label = (scenes.root / "labels" / "train" / f"{image.stem}.txt").read_text()
        target = pool_dir / image.name
        shutil.copyfile(image, target)
        pool[image.stem] = {"image": target, "label": label, "kind": "scene", "group": image.stem}
    rng = np.random.default_rng(1000)
    originals = sorted(pool)
    for i, stem in enumerate(rng.choice(originals, len(originals) // 4, replace=False)):
        pixels = cv2.imread(str(pool[str(stem)]["image"]))
        copy = _expose(pixels, rng)
        target = pool_dir / f"dup_{i:05d}.png"
        cv2.imwrite(str(target), copy)
        pool[target.stem] = {
            "image": target,
            "label": pool[str(stem)]["label"],
            "kind": "duplicate",
            "group": stem,
        }
    return pool, scenes.coco_val


def _camera_pool(root: Path, pool_dir: Path, args: argparse.Namespace) -> tuple[dict[str, Frame], Path]:
    rng = np.random.default_rng(2000)
    backgrounds = [draw_background(rng, args.imgsz) for _ in range(CAMERAS)]
    pool: dict[str, Frame] = {}
    for clip in range(args.pool_size):
        frames = _clip(rng, backgrounds, args.clip_frames)
        for t, (pixels, rows) in enumerate(frames):
            target = pool_dir / f"clip{clip:04d}_t{t}.png"
            cv2.imwrite(str(target), pixels)
            pool[target.stem] = {
                "image": target,
                "label": yolo_label_text(rows, args.imgsz),
                "kind": "clip",
                "group": clip,
            }
    test_dir = root / "test"
    (test_dir / "images" / "val").mkdir(parents=True, exist_ok=True)
    tests = [_clip(rng, backgrounds, 1)[0] for _ in range(args.test_size)]
    for index, (pixels, _) in enumerate(tests):
        cv2.imwrite(str(test_dir / "images" / "val" / f"test_{index:05d}.png"), pixels)
    test_gt = test_dir / "annotations_coco_val.json"
    test_gt.write_text(
        json.dumps(
            coco_ground_truth(
                [(f"images/val/test_{i:05d}.png", rows) for i, (_, rows) in enumerate(tests)], args.imgsz
            )
        )
    )
    return pool, test_gt


Rows = list[Box]


def _clip(
    rng: np.random.Generator,
    backgrounds: Sequence[npt.NDArray[np.uint8]],
    frames: int,
    class_shares: Sequence[float] = CLASS_SHARES,
    empty_share: float = EMPTY_CLIP_SHARE,
) -> list[tuple[npt.NDArray[np.uint8], Rows]]:
    """One camera's consecutive frames of a few drifting shapes: (image, boxes) per frame."""
    background = backgrounds[int(rng.integers(len(backgrounds)))]
    size = background.shape[0]
    count = 0 if rng.random() < empty_share else int(rng.choice(OBJECT_COUNTS))
    shapes = []
    for _ in range(count):
        side = int(rng.integers(size // 8, size // 2))
        velocity = rng.uniform(-STEP_PX, STEP_PX, 2)
        travel = np.abs(velocity) * (frames - 1)
        low = np.where(velocity < 0, travel, 0.0)
        high = size - side - np.where(velocity > 0, travel, 0.0)
        start = rng.uniform(low, high)
        class_id = int(rng.choice(len(SHAPE_NAMES), p=class_shares))
        shapes.append((class_id, side, start, velocity, random_color(rng)))
    result = []
    for t in range(frames):
        image = background.copy()
        rows: Rows = []
        for class_id, side, start, velocity, color in shapes:
            x1, y1 = (round(float(v)) for v in start + velocity * t)
            draw_shape(image, class_id, x1, y1, side, color)
            rows.append((class_id, float(x1), float(y1), float(x1 + side), float(y1 + side)))
        result.append((_expose(image, rng), rows))
    return result


def _expose(pixels: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Sensor noise and a small exposure change: what differs between two frames of one view."""
    noise = rng.normal(0.0, 3.0, pixels.shape) + rng.uniform(-6.0, 6.0)
    return np.clip(pixels.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def write_base_dataset(folder: Path, images: int, size: int) -> Path:
    """The pretraining set of the starting model: independent scenes of circles and squares only.

    Like a public detector's training data: a background of its own per image, 1 to 4 shapes,
    balanced classes, and none of the site's rare class (triangles), which it must learn from
    the site's labels.
    """
    rng = np.random.default_rng(3000)
    for split in ("images", "labels"):
        (folder / split / "train").mkdir(parents=True, exist_ok=True)
    for index in range(images):
        [(pixels, rows)] = _clip(rng, [draw_background(rng, size)], 1, BASE_CLASS_SHARES, 0.0)
        cv2.imwrite(str(folder / "images" / "train" / f"base_{index:05d}.png"), pixels)
        (folder / "labels" / "train" / f"base_{index:05d}.txt").write_text(yolo_label_text(rows, size))
    return _data_yaml(folder)


def write_dataset(folder: Path, stems: Sequence[str], pool: dict[str, Frame]) -> Path:
    """Reveal the labels of ``stems``: a YOLO dataset of exactly those frames."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "images" / "train").mkdir(parents=True)
    (folder / "labels" / "train").mkdir(parents=True)
    for stem in stems:
        shutil.copyfile(pool[stem]["image"], folder / "images" / "train" / f"{stem}.png")
        (folder / "labels" / "train" / f"{stem}.txt").write_text(pool[stem]["label"])
    return _data_yaml(folder)


def _data_yaml(folder: Path) -> Path:
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(SHAPE_NAMES))
    data_yaml = folder / "data.yaml"
    data_yaml.write_text(
        f"path: {folder.resolve()}\ntrain: images/train\nval: images/train\nnames:\n{names}\n"
    )
    return data_yaml


def link_frames(folder: Path, stems: Sequence[str], pool: dict[str, Frame]) -> Path:
    """A folder of symbolic links to the given pool frames (what select_frames reads)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for stem in stems:
        (folder / f"{stem}.png").symlink_to(pool[stem]["image"].resolve())
    return folder


def describe_labeled(labeled: Sequence[str], picks: Sequence[str], pool: dict[str, Frame]) -> dict[str, int]:
    """What a labeled set is made of: distinct groups, wasted repeats, empty frames, boxes per class."""
    groups = [pool[s]["group"] for s in labeled if pool[s]["group"] is not None]
    boxes = [0] * len(SHAPE_NAMES)
    for stem in labeled:
        for line in pool[stem]["label"].splitlines():
            boxes[int(line.split()[0])] += 1
    return {
        "labeled_distinct_groups": len(set(groups)),
        "labeled_empty": sum(not pool[s]["label"].strip() for s in labeled),
        "labeled_coco8": sum(pool[s]["kind"] == "coco8" for s in labeled),
        "picked_empty": sum(not pool[s]["label"].strip() for s in picks),
        **{f"labeled_{name}_boxes": n for name, n in zip(SHAPE_NAMES, boxes, strict=True)},
    }
