"""One in-memory detection dataset record, read from and written to YOLO and COCO files.

:class:`DetectionDataset` holds class names and one :class:`LabeledImage` per image (path, size,
boxes ``xyxy`` in pixels, class ids, split). Readers check everything and name the bad file and
line or field in a :class:`~cvops.errors.DatasetError`.

Round-trip precision (write, then read back):

- COCO JSON: boxes come back bit-identical (float32). Each float32 coordinate is written as the
  JSON number of the same value, and ``width = x2 - x1`` is exact in float64 for float32 inputs
  (their exponents differ by less than 29 for any box larger than 1e-6 px on a real image).
- YOLO text: normalized ``cx cy w h`` are written with ``decimals`` digits (6 by default, like
  Ultralytics), so box edges come back within ``10**-decimals`` x the image side in pixels
  (0.00064 px on a 640 px image). Reading a file written here and writing it again gives the
  same bytes (the float32 error, ~6e-8, is far below the 5e-7 rounding step).

Boxes may overshoot the image by at most :data:`EDGE_TOLERANCE_PX` (float noise in exports) and
are then clipped to it; a box further out is an error.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from cvops.errors import DatasetError, DatasetNotFoundError
from cvops.images import IMAGE_SUFFIXES

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

YOLO_SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The split keys of an Ultralytics ``data.yaml``, in the order they are read."""

YOLO_DECIMALS = 6
"""Digits after the point of normalized YOLO coordinates (Ultralytics' own convention)."""

EDGE_TOLERANCE_PX = 1.0
"""How far (pixels) a box may overshoot its image before it counts as out of range."""

COCO_ANNOTATION_PREFIX = "annotations_coco_"
""":func:`write_coco` names each split's file ``annotations_coco_<split>.json``."""

_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True, eq=False)
class LabeledImage:
    """One image and its ground-truth boxes.

    Attributes:
        image_path: The image file.
        width: Image width in pixels.
        height: Image height in pixels.
        xyxy: Boxes, shape (N, 4), float32, ``x1, y1, x2, y2`` in pixels inside the image.
        class_ids: Class index of each box, shape (N,), int64, into the dataset's class names.
        split: Split name (``train``, ``val``, ...); letters, digits, ``_``, ``.``, ``-``.
    """

    image_path: Path
    width: int
    height: int
    xyxy: FloatArray
    class_ids: IntArray
    split: str

    def __post_init__(self) -> None:
        """Check shapes, dtypes and ranges so a bad record never travels further."""
        where = str(self.image_path)
        if not _SPLIT_NAME.fullmatch(self.split):
            raise DatasetError(
                f"{where}: split: expected letters, digits, '_', '.' or '-', got {self.split!r}"
            )
        if self.width < 1 or self.height < 1:
            raise DatasetError(f"{where}: expected a positive image size, got {self.width}x{self.height}")
        if self.xyxy.dtype != np.float32 or self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise DatasetError(
                f"{where}: xyxy: expected float32 (N, 4), got {self.xyxy.dtype} {self.xyxy.shape}"
            )
        n = self.xyxy.shape[0]
        if self.class_ids.dtype != np.int64 or self.class_ids.shape != (n,):
            raise DatasetError(
                f"{where}: class_ids: expected int64 ({n},), got "
                f"{self.class_ids.dtype} {self.class_ids.shape}"
            )
        if n == 0:
            return
        x1, y1, x2, y2 = self.xyxy.T
        if not np.isfinite(self.xyxy).all():
            raise DatasetError(f"{where}: xyxy: expected finite values, got NaN or inf")
        inside = (x1 >= 0) & (x1 <= x2) & (x2 <= self.width) & (y1 >= 0) & (y1 <= y2) & (y2 <= self.height)
        if not inside.all():
            bad = self.xyxy[int(np.flatnonzero(~inside)[0])].tolist()
            raise DatasetError(
                f"{where}: expected boxes with 0 <= x1 <= x2 <= {self.width} and 0 <= y1 <= y2 <= "
                f"{self.height}, got {bad}"
            )
        if (self.class_ids < 0).any():
            raise DatasetError(f"{where}: class_ids: expected values >= 0, got {self.class_ids.min()}")

    @classmethod
    def from_arrays(
        cls,
        image_path: Path,
        width: int,
        height: int,
        xyxy: npt.ArrayLike,
        class_ids: npt.ArrayLike,
        split: str,
    ) -> LabeledImage:
        """Build a record from loose arrays (copied, converted to float32 / int64, read-only).

        Args:
            image_path: The image file.
            width: Image width in pixels.
            height: Image height in pixels.
            xyxy: Boxes, shape (N, 4) (or empty), pixels.
            class_ids: Class indices, shape (N,).
            split: Split name.
        """
        boxes = np.array(xyxy, dtype=np.float32).reshape(-1, 4)
        ids = np.array(class_ids, dtype=np.int64).reshape(-1)
        boxes.flags.writeable = False
        ids.flags.writeable = False
        return cls(Path(image_path), int(width), int(height), boxes, ids, split)

    def __len__(self) -> int:
        """Return the number of boxes."""
        return int(self.xyxy.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class DetectionDataset:
    """A detection dataset: class names and labeled images, in a fixed order.

    Attributes:
        class_names: Class names, indexed by class id; unique, non-empty, one line each.
        items: The labeled images (an image without boxes is a background image).
    """

    class_names: tuple[str, ...]
    items: tuple[LabeledImage, ...]

    def __post_init__(self) -> None:
        """Check the class names and that every class id names one of them."""
        if not self.class_names:
            raise DatasetError("class_names: expected at least one class name, got none")
        for index, name in enumerate(self.class_names):
            if not isinstance(name, str) or not name.strip() or "\n" in name:
                raise DatasetError(
                    f"class_names[{index}]: expected a non-empty one-line string, got {name!r}"
                )
        if len(set(self.class_names)) != len(self.class_names):
            duplicates = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
            raise DatasetError(f"class_names: expected unique names, got duplicates {duplicates}")
        for item in self.items:
            if len(item) and int(item.class_ids.max()) >= len(self.class_names):
                raise DatasetError(
                    f"{item.image_path}: class id {int(item.class_ids.max())} is not in the "
                    f"{len(self.class_names)} class names"
                )

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.items)

    @property
    def splits(self) -> tuple[str, ...]:
        """Return the split names, in the order they first appear."""
        return tuple(dict.fromkeys(item.split for item in self.items))

    @property
    def box_count(self) -> int:
        """Return the number of boxes over all images."""
        return sum(len(item) for item in self.items)

    def select_split(self, split: str) -> DetectionDataset:
        """Return the images of one split (an empty dataset if there are none)."""
        return DetectionDataset(self.class_names, tuple(i for i in self.items if i.split == split))


def merge_datasets(datasets: Sequence[DetectionDataset]) -> DetectionDataset:
    """Concatenate datasets that share the same class names, in the given order.

    Raises:
        DatasetError: When there is no dataset or the class names differ.
    """
    if not datasets:
        raise DatasetError("expected at least one dataset to merge, got none")
    names = datasets[0].class_names
    for index, dataset in enumerate(datasets[1:], start=1):
        if dataset.class_names != names:
            raise DatasetError(
                f"dataset {index}: expected the class names {list(names)}, got {list(dataset.class_names)}"
            )
    return DetectionDataset(names, tuple(item for dataset in datasets for item in dataset.items))


def read_image_size(path: Path, where: str) -> tuple[int, int]:
    """Return an image's ``(width, height)`` in pixels from its header, as stored (no EXIF rotation).

    Args:
        path: The image file.
        where: What to name in an error (the label or annotation that refers to the image).

    Raises:
        DatasetError: When the file is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError as error:
        raise DatasetError(f"{where}: image {path} does not exist") from error
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"{where}: {path} is not a readable image ({error})") from error
    except ImportError as error:
        # Once ultralytics is imported it patches Image.open to fetch a HEIF plugin for files
        # Pillow cannot identify; offline that fails with ModuleNotFoundError: still not an image.
        raise DatasetError(f"{where}: {path} is not a readable image") from error
    return int(width), int(height)


def fit_box_xyxy(
    box: Sequence[float], width: int, height: int, where: str
) -> tuple[float, float, float, float]:
    """Clip a pixel box that overshoots its image by at most :data:`EDGE_TOLERANCE_PX`.

    Args:
        box: ``x1, y1, x2, y2`` in pixels.
        width: Image width in pixels.
        height: Image height in pixels.
        where: What to name in an error (file and line or field).

    Raises:
        DatasetError: For a non-finite box, x2 < x1 or y2 < y1, or a box further outside the image.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise DatasetError(f"{where}: expected finite coordinates, got {[x1, y1, x2, y2]}")
    if x2 < x1 or y2 < y1:
        raise DatasetError(f"{where}: expected x2 >= x1 and y2 >= y1, got {[x1, y1, x2, y2]}")
    tol = EDGE_TOLERANCE_PX
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise DatasetError(
            f"{where}: label out of range: box {[round(v, 3) for v in (x1, y1, x2, y2)]} px lies "
            f"outside the {width}x{height} image"
        )
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def read_dataset(path: Path) -> DetectionDataset:
    """Read a dataset from a YOLO ``data.yaml``, a COCO JSON file, or a folder holding either.

    A folder is read as :func:`locate_dataset_files` finds it.

    Raises:
        DatasetNotFoundError: When ``path`` does not exist.
        DatasetError: When no dataset file is found or one is malformed.
    """
    files = locate_dataset_files(path)
    if files[0].suffix in (".yaml", ".yml"):
        return read_yolo(files[0])
    return merge_datasets([read_coco(f) for f in files])


def locate_dataset_files(path: Path) -> list[Path]:
    """Return the dataset file(s) of a path: one YOLO YAML, or one or more COCO JSON files.

    A file is returned as it is. In a folder: its ``data.yaml``, else its only ``*.yaml`` with
    ``names``, else every top-level COCO JSON file (``images`` and ``categories`` keys).

    Raises:
        DatasetNotFoundError: When ``path`` does not exist.
        DatasetError: When there is none, or several YAML files with ``names``.
    """
    if not path.exists():
        raise DatasetNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix in (".yaml", ".yml", ".json"):
            return [path]
        raise DatasetError(f"{path}: expected a data.yaml or a COCO .json file")
    if (path / "data.yaml").is_file():
        return [path / "data.yaml"]
    yamls = sorted(p for p in (*path.glob("*.yaml"), *path.glob("*.yml")) if _is_yolo_yaml(p))
    if len(yamls) > 1:
        raise DatasetError(f"{path}: expected one dataset YAML, found {[p.name for p in yamls]}")
    if yamls:
        return yamls
    coco_files = sorted(p for p in path.glob("*.json") if _is_coco_json(p))
    if coco_files:
        return coco_files
    raise DatasetError(f"{path}: no data.yaml or COCO annotations JSON found")


def _is_yolo_yaml(path: Path) -> bool:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return True  # let read_yolo name the error
    return isinstance(doc, dict) and "names" in doc


def _is_coco_json(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return path.name.startswith(COCO_ANNOTATION_PREFIX)  # ours, broken: read_coco names the error
    return isinstance(doc, dict) and "images" in doc and "categories" in doc


# --------------------------------------------------------------------------------------------- YOLO


def read_yolo(data_yaml: Path, splits: Sequence[str] = YOLO_SPLITS) -> DetectionDataset:
    """Read an Ultralytics YOLO dataset.

    ``data.yaml`` holds ``path`` (the root; relative to the YAML's folder, and the YAML's folder
    itself when ``path`` is absent or does not exist, e.g. after a move), one key per split (an
    image folder, a ``.txt`` list of images, or a list of those, relative to the root) and
    ``names`` (a list or a mapping of class id to name). Labels lie where Ultralytics looks: the
    last ``images`` folder of an image path replaced by ``labels``, suffix ``.txt``, one
    ``class cx cy w h`` line per box, normalized to 0..1. An image without a label file is a
    background image.

    Args:
        data_yaml: The dataset file.
        splits: Which split keys to read, in this order; absent or empty keys are skipped.

    Raises:
        DatasetNotFoundError: When ``data_yaml`` does not exist.
        DatasetError: Naming the file and line or field: bad YAML, bad ``names``, a missing
            image folder, a label without an image, a class id not in ``names``, coordinates
            outside 0..1 or a box outside its image.
    """
    doc = _load_yaml(data_yaml)
    names = _yolo_names(doc, data_yaml)
    yaml_dir = data_yaml.parent
    root = yaml_dir
    if doc.get("path"):
        declared = Path(str(doc["path"]))
        declared = declared if declared.is_absolute() else yaml_dir / declared
        if declared.is_dir():
            root = declared
    items: list[LabeledImage] = []
    for split in splits:
        value = doc.get(split)
        if not value:
            continue
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if not isinstance(entry, str):
                raise DatasetError(f"{data_yaml}: {split}: expected a folder or list file, got {entry!r}")
            for image in _yolo_split_images(root, entry, f"{data_yaml}: {split}"):
                items.append(_read_yolo_item(image, split, len(names)))
    if not items:
        raise DatasetError(f"{data_yaml}: expected images in at least one of {list(splits)}, found none")
    return DetectionDataset(names, tuple(items))


def _read_text(path: Path, kind: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise DatasetNotFoundError(f"{path}: no such file") from error
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise DatasetError(f"{path}: not a UTF-8 {kind} file") from error


def _load_yaml(path: Path) -> dict[str, Any]:
    text = _read_text(path, "YAML")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DatasetError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: expected a YAML mapping with path, train, val and names")
    return doc


def _yolo_names(doc: dict[str, Any], data_yaml: Path) -> tuple[str, ...]:
    raw = doc.get("names")
    if isinstance(raw, dict):
        if sorted(raw) != list(range(len(raw))):
            raise DatasetError(
                f"{data_yaml}: names: expected class ids 0..{len(raw) - 1} as keys, got {list(raw)[:10]}"
            )
        values = [raw[i] for i in range(len(raw))]
    elif isinstance(raw, list):
        values = raw
    else:
        raise DatasetError(
            f"{data_yaml}: names: expected a list or a mapping of class id to name, got {raw!r}"
        )
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise DatasetError(f"{data_yaml}: names[{index}]: expected a string, got {value!r} (quote it)")
    if "nc" in doc and doc["nc"] != len(values):
        raise DatasetError(
            f"{data_yaml}: nc: expected {len(values)} (the number of names), got {doc['nc']!r}"
        )
    try:
        return DetectionDataset(tuple(values), ()).class_names
    except DatasetError as error:
        raise DatasetError(f"{data_yaml}: {error}") from error


def _yolo_split_images(root: Path, entry: str, where: str) -> list[Path]:
    location = Path(entry) if Path(entry).is_absolute() else root / entry
    if location.is_dir():
        if "images" not in location.parts:
            raise DatasetError(
                f"{where}: {location}: expected image folders under an 'images' folder (labels are "
                f"found by replacing it with 'labels')"
            )
        images = sorted(p for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        _check_orphan_labels(location, images)
        return images
    if location.is_file() and location.suffix == ".txt":
        images = []
        for number, line in enumerate(location.read_text(encoding="utf-8").splitlines(), start=1):
            name = line.strip()
            if not name:
                continue
            # Ultralytics: "./x" is relative to the list file, anything else to the root.
            image = location.parent / name[2:] if name.startswith("./") else root / name
            if not image.is_file():
                raise DatasetError(f"{location}:{number}: image {image} does not exist")
            images.append(image)
        return images
    raise DatasetError(f"{where}: {location} is not an image folder or a .txt list of images")


def yolo_label_path(image: Path) -> Path:
    """Return where Ultralytics looks for an image's label: last ``images`` -> ``labels``, ``.txt``.

    Raises:
        DatasetError: When no folder of the image's path is named ``images``.
    """
    parts = image.parts
    if "images" not in parts[:-1]:
        raise DatasetError(
            f"{image}: expected the image under an 'images' folder (its label is found by "
            f"replacing that folder with 'labels')"
        )
    index = len(parts) - 2 - parts[:-1][::-1].index("images")
    return Path(*parts[:index], "labels", *parts[index + 1 :]).with_suffix(".txt")


def _check_orphan_labels(image_dir: Path, images: list[Path]) -> None:
    """Fail on a label file whose image is missing (a deleted or renamed image)."""
    expected = {yolo_label_path(image): image for image in images}
    if len(expected) != len(images):
        seen: dict[Path, Path] = {}
        for image in images:
            label = yolo_label_path(image)
            if label in seen:
                raise DatasetError(f"{image}: shares its label file {label} with {seen[label]}")
            seen[label] = image
    label_dir = yolo_label_path(image_dir / "x.jpg").parent
    if not label_dir.is_dir():
        return
    for label in sorted(label_dir.rglob("*.txt")):
        if label not in expected:
            raise DatasetError(f"{label}: missing image for this label (no {label.stem}.* in {image_dir})")


def _read_yolo_item(image: Path, split: str, class_count: int) -> LabeledImage:
    label = yolo_label_path(image)
    width, height = read_image_size(image, str(label))
    boxes: list[tuple[float, float, float, float]] = []
    ids: list[int] = []
    if label.is_file():
        try:
            text = label.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise DatasetError(f"{label}: not a UTF-8 text file") from error
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            class_id, box = _parse_yolo_line(fields, class_count, width, height, f"{label}:{number}")
            ids.append(class_id)
            boxes.append(box)
    return LabeledImage.from_arrays(image, width, height, boxes, ids, split)


def _parse_yolo_line(
    fields: list[str], class_count: int, width: int, height: int, where: str
) -> tuple[int, tuple[float, float, float, float]]:
    if len(fields) != 5:
        raise DatasetError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}")
    try:
        raw_class = float(fields[0])
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError as error:
        raise DatasetError(
            f"{where}: expected numbers 'class cx cy w h', got {' '.join(fields)!r}"
        ) from error
    if not raw_class.is_integer():
        raise DatasetError(f"{where}: class id: expected an integer, got {fields[0]!r}")
    class_id = int(raw_class)
    if not 0 <= class_id < class_count:
        raise DatasetError(f"{where}: class id {class_id} is not in names (expected 0..{class_count - 1})")
    values = (cx, cy, w, h)
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise DatasetError(
            f"{where}: non-normalized coordinates: expected cx cy w h in [0, 1], got {' '.join(fields[1:])}"
        )
    box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
    return class_id, fit_box_xyxy(box, width, height, where)


def yolo_label_lines(item: LabeledImage, decimals: int = YOLO_DECIMALS) -> list[str]:
    """Return an image's YOLO label lines ``class cx cy w h`` (normalized, ``decimals`` digits).

    Args:
        item: The labeled image.
        decimals: Digits after the point.
    """
    lines = []
    for class_id, (x1, y1, x2, y2) in zip(item.class_ids.tolist(), item.xyxy.tolist(), strict=True):
        # float64 arithmetic on the float32 values; "+ 0.0" turns -0.0 into 0.0.
        values = (
            (x1 + x2) / 2 / item.width,
            (y1 + y2) / 2 / item.height,
            (x2 - x1) / item.width,
            (y2 - y1) / item.height,
        )
        lines.append(f"{class_id} " + " ".join(f"{v + 0.0:.{decimals}f}" for v in values))
    return lines


def write_yolo(dataset: DetectionDataset, out_dir: Path, decimals: int = YOLO_DECIMALS) -> Path:
    """Write a dataset in the Ultralytics layout and return its ``data.yaml``.

    Images are copied to ``images/<split>/<file name>``, labels written to
    ``labels/<split>/<stem>.txt`` (an empty file for a background image), and ``data.yaml``
    gets the absolute root as ``path`` (what Ultralytics needs), one key per split and ``names``.
    Splits other than train/val/test are written but read back only when named in
    :func:`read_yolo`'s ``splits``.

    Args:
        dataset: The dataset.
        out_dir: Folder to write; existing files of the same names are overwritten.
        decimals: Digits after the point of normalized coordinates.

    Raises:
        DatasetError: When two images of one split share a file name or a stem.
    """
    placed = _place_images(dataset, out_dir)
    for item, image in zip(dataset.items, placed, strict=True):
        label = yolo_label_path(image)
        label.parent.mkdir(parents=True, exist_ok=True)
        lines = yolo_label_lines(item, decimals)
        label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    doc: dict[str, Any] = {"path": str(out_dir.resolve())}
    for split in dataset.splits:
        doc[split] = f"images/{split}"
    doc["names"] = dict(enumerate(dataset.class_names))
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return data_yaml


def _place_images(dataset: DetectionDataset, out_dir: Path) -> list[Path]:
    """Copy every image to ``out_dir/images/<split>/<name>`` and return the new paths."""
    placed: list[Path] = []
    by_stem: dict[tuple[str, str], Path] = {}
    for item in dataset.items:
        key = (item.split, item.image_path.stem)
        if key in by_stem:
            raise DatasetError(
                f"{item.image_path}: split {item.split!r} already has an image named "
                f"{item.image_path.stem} ({by_stem[key]}); rename one of them"
            )
        by_stem[key] = item.image_path
        target = out_dir / "images" / item.split / item.image_path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and target.samefile(item.image_path)):
            shutil.copyfile(item.image_path, target)
        placed.append(target)
    return placed


# --------------------------------------------------------------------------------------------- COCO


def read_coco(
    annotation_file: Path, images_dir: Path | None = None, split: str | None = None
) -> DetectionDataset:
    """Read one COCO detection JSON file (one split).

    Class ids are the categories in order of their COCO id (so the 91-id COCO mapping becomes
    0..79). Crowd annotations (``iscrowd: 1``) are left out: they mark regions, not objects.

    Args:
        annotation_file: The COCO JSON file.
        images_dir: Folder that ``file_name`` is relative to; the JSON file's folder by default.
        split: Split name; by default the file stem's last ``_`` part (``annotations_coco_val``
            -> ``val``, ``instances_val2017`` -> ``val2017``).

    Raises:
        DatasetNotFoundError: When the file does not exist.
        DatasetError: Naming the file and field: bad JSON, a missing image, a category id not in
            ``categories``, a box outside its image.
    """
    doc = load_json(annotation_file)
    base = annotation_file.parent if images_dir is None else images_dir
    split_name = annotation_file.stem.rsplit("_", 1)[-1] if split is None else split
    where = str(annotation_file)
    if not isinstance(doc, dict):
        raise DatasetError(f"{where}: expected a JSON object with images, annotations and categories")
    categories = _list_field(doc, "categories", where)
    by_category: dict[int, str] = {}
    for index, category in enumerate(categories):
        field = f"{where}: categories[{index}]"
        category_id = _int_field(category, "id", field)
        name = _str_field(category, "name", field)
        if category_id in by_category:
            raise DatasetError(f"{field}.id: duplicate category id {category_id}")
        by_category[category_id] = name
    category_ids = sorted(by_category)
    class_of = {category_id: index for index, category_id in enumerate(category_ids)}
    try:
        names = DetectionDataset(tuple(by_category[c] for c in category_ids), ()).class_names
    except DatasetError as error:
        raise DatasetError(f"{where}: categories: {error}") from error

    images: dict[int, tuple[Path, int, int]] = {}
    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    ids: dict[int, list[int]] = {}
    for index, image in enumerate(_list_field(doc, "images", where)):
        field = f"{where}: images[{index}]"
        image_id = _int_field(image, "id", field)
        if image_id in images:
            raise DatasetError(f"{field}.id: duplicate image id {image_id}")
        path = base / _str_field(image, "file_name", field)
        declared = (_int_field(image, "width", field), _int_field(image, "height", field))
        if not path.is_file():
            raise DatasetError(f"{field}.file_name: missing image {path}")
        actual = read_image_size(path, f"{field}.file_name")
        if actual != declared:
            raise DatasetError(
                f"{field}: width, height: expected {actual[0]}x{actual[1]} (the image file), "
                f"got {declared[0]}x{declared[1]}"
            )
        images[image_id] = (path, *actual)
        boxes[image_id], ids[image_id] = [], []
    for index, annotation in enumerate(_list_field(doc, "annotations", where, required=False)):
        field = f"{where}: annotations[{index}]"
        image_id = _int_field(annotation, "image_id", field)
        category_id = _int_field(annotation, "category_id", field)
        if image_id not in images:
            raise DatasetError(f"{field}.image_id: no image with id {image_id} in images")
        if category_id not in class_of:
            raise DatasetError(f"{field}.category_id: {category_id} is not in categories {category_ids[:10]}")
        if annotation.get("iscrowd", 0):
            continue
        bbox = annotation.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
            or bbox[2] < 0
            or bbox[3] < 0
        ):
            raise DatasetError(
                f"{field}.bbox: expected [x, y, width, height] with width, height >= 0, got {bbox!r}"
            )
        x, y, w, h = (float(v) for v in bbox)
        _, width, height = images[image_id]
        boxes[image_id].append(fit_box_xyxy((x, y, x + w, y + h), width, height, f"{field}.bbox"))
        ids[image_id].append(class_of[category_id])
    items = tuple(
        LabeledImage.from_arrays(path, width, height, boxes[image_id], ids[image_id], split_name)
        for image_id, (path, width, height) in images.items()
    )
    return DetectionDataset(names, items)


def write_coco(
    dataset: DetectionDataset, out_dir: Path, category_ids: Sequence[int] | None = None
) -> list[Path]:
    """Write one COCO JSON file per split, plus the images, and return the JSON files.

    Images are copied to ``images/<split>/<file name>`` and each split's annotations written to
    ``annotations_coco_<split>.json`` with ``file_name`` relative to ``out_dir``; image and
    annotation ids count from 1 in dataset order.

    Args:
        dataset: The dataset.
        out_dir: Folder to write; existing files of the same names are overwritten.
        category_ids: COCO category id of each class id (e.g. the 91-id COCO mapping);
            ``class id + 1`` by default.

    Raises:
        DatasetError: When ``category_ids`` does not give one unique id per class, or two images
            of one split share a file name.
    """
    if category_ids is None:
        category_ids = range(1, len(dataset.class_names) + 1)
    category_ids = [int(c) for c in category_ids]
    if len(category_ids) != len(dataset.class_names) or len(set(category_ids)) != len(category_ids):
        raise DatasetError(
            f"category_ids: expected {len(dataset.class_names)} unique ids, got {category_ids[:10]}"
        )
    placed = _place_images(dataset, out_dir)
    categories = [
        {"id": category_id, "name": name}
        for category_id, name in sorted(zip(category_ids, dataset.class_names, strict=True))
    ]
    written = []
    for split in dataset.splits:
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for item, path in zip(dataset.items, placed, strict=True):
            if item.split != split:
                continue
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": path.relative_to(out_dir).as_posix(),
                    "width": item.width,
                    "height": item.height,
                }
            )
            for class_id, (x1, y1, x2, y2) in zip(item.class_ids.tolist(), item.xyxy.tolist(), strict=True):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category_ids[class_id],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        target = out_dir / f"{COCO_ANNOTATION_PREFIX}{split}.json"
        doc = {"images": images, "annotations": annotations, "categories": categories}
        target.write_text(json.dumps(doc), encoding="utf-8")
        written.append(target)
    return written


def load_json(path: Path) -> Any:
    """Parse a UTF-8 JSON file.

    Raises:
        DatasetNotFoundError: When the file does not exist.
        DatasetError: For bad JSON, naming the file, line and column.
    """
    text = _read_text(path, "JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}: bad JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error


def _list_field(doc: dict[str, Any], key: str, where: str, required: bool = True) -> list[dict[str, Any]]:
    value = doc.get(key, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise DatasetError(f"{where}: {key}: expected a list of objects, got {type(value).__name__}")
    return value


def _int_field(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DatasetError(f"{where}.{key}: expected an integer, got {value!r}")
    return value


def _str_field(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value
