"""Label Studio JSON exports -> :class:`~cvops.data.formats.DetectionDataset`.

The "JSON" export is a list of tasks; each has ``data.image`` (a URL) and ``annotations``, each
with ``result`` regions. A ``rectanglelabels`` region gives ``value.x/y/width/height`` in percent
of the image, ``value.rotation`` in degrees clockwise about its top-left corner, and
``value.rectanglelabels`` (the class name). Per task, the latest annotation (``updated_at``, else
``created_at``, then the highest id) that is not cancelled (``was_cancelled``, or the older
``skipped``) is used; tasks with none are left out, an annotation with no regions is a background
image. Other region types (polygons, choices, ...) are ignored.

Image URLs are resolved to files under an images root, by name:
``/data/local-files/?d=dir/a.jpg`` -> ``root/dir/a.jpg`` if it exists, else any ``a.jpg`` under the
root; ``/data/upload/3/1a2b3c4d-a.jpg`` -> ``1a2b3c4d-a.jpg`` or, without the 8-hex-digit upload
prefix Label Studio adds, ``a.jpg``; cloud and http URLs -> their file name.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from cvops.data.formats import (
    DetectionDataset,
    LabeledImage,
    fit_box_xyxy,
    load_json,
    read_image_size,
)
from cvops.errors import DatasetError
from cvops.images import IMAGE_SUFFIXES

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class _ImageIndex:
    """Every image file under a root, found by name."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DatasetError(f"{root}: images root is not a folder")
        self.root = root
        self.by_name: dict[str, list[Path]] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                self.by_name.setdefault(path.name, []).append(path)

    def resolve(self, url: str, where: str) -> Path:
        """Return the file a task's image URL names, or fail naming the task."""
        parsed = urlparse(url)
        relative = ""
        if parsed.path.rstrip("/").endswith("/data/local-files"):
            values = parse_qs(parsed.query, keep_blank_values=True).get("d")
            # Like Label Studio's local-files view: decoded once, always relative to its root.
            relative = posixpath.normpath(values[-1] if values else "").lstrip("/")
            if relative and not relative.startswith(".."):
                direct = self.root / relative
                if direct.is_file():
                    return direct
        else:
            relative = unquote(parsed.path).lstrip("/")
        name = posixpath.basename(relative)
        if not name:
            raise DatasetError(f"{where}: data.image {url!r} names no file")
        names = [name]
        if parsed.path.startswith("/data/upload/") and _UPLOAD_PREFIX.match(name):
            names.append(_UPLOAD_PREFIX.sub("", name))
        for candidate in names:
            found = self.by_name.get(candidate, [])
            if len(found) > 1:
                # Prefer the files sharing the longest path tail with the URL (b/a.jpg for x/b/a.jpg).
                shared = [_shared_tail(p.relative_to(self.root).parts, relative.split("/")) for p in found]
                found = [p for p, n in zip(found, shared, strict=True) if n == max(shared)]
            if len(found) == 1:
                return found[0]
            if found:
                shown = [str(p.relative_to(self.root)) for p in found[:5]]
                raise DatasetError(f"{where}: image {candidate} is ambiguous under {self.root}: {shown}")
        raise DatasetError(f"{where}: image for {url!r} not found under {self.root} (looked for {names})")


def _shared_tail(a: Sequence[str], b: Sequence[str]) -> int:
    """Return how many trailing path parts two paths share."""
    count = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        count += 1
    return count


def read_label_studio(
    export_file: Path,
    images_root: Path,
    class_names: Sequence[str] | None = None,
    split: str = "train",
    image_key: str = "image",
) -> DetectionDataset:
    """Convert a Label Studio JSON export of rectangle labels into a dataset.

    Args:
        export_file: The export (``JSON`` format: a list of tasks).
        images_root: Folder holding the images (searched recursively, by file name).
        class_names: Class names in class-id order (those of the labeling config); the sorted
            labels used in the export when None.
        split: Split name of every image.
        image_key: The key of ``task.data`` that holds the image URL.

    Raises:
        DatasetNotFoundError: When the export file does not exist.
        DatasetError: Naming the task (id and position) and field: bad JSON, an image that
            cannot be found or whose size differs from the annotated one, a label not in
            ``class_names``, a region outside its image.
    """
    tasks = load_json(export_file)
    if not isinstance(tasks, list):
        raise DatasetError(f"{export_file}: expected a JSON list of tasks (the 'JSON' export format)")
    index = _ImageIndex(images_root)
    chosen: list[tuple[str, Path, list[dict[str, Any]]]] = []
    for position, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise DatasetError(f"{export_file}: [{position}]: expected a task object")
        where = f"{export_file}: task {task.get('id', '?')} ([{position}])"
        annotation = _latest_annotation(task, where)
        if annotation is None:
            continue
        data = task.get("data")
        url = data.get(image_key) if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise DatasetError(f"{where}: data.{image_key}: expected an image URL, got {url!r}")
        regions = [
            r
            for r in _list(annotation.get("result", []), f"{where}: result")
            if isinstance(r, dict) and r.get("type") == "rectanglelabels"
        ]
        chosen.append((where, index.resolve(url, where), regions))
    if class_names is None:
        used = {_region_label(region, where) for where, _, regions in chosen for region in regions}
        class_names = sorted(used) or ["object"]
    names = tuple(class_names)
    class_of = {name: class_id for class_id, name in enumerate(names)}
    items = []
    for where, image, regions in chosen:
        width, height = read_image_size(image, where)
        boxes, ids = [], []
        for region in regions:
            region_where = f"{where}: result {region.get('id', '?')}"
            label = _region_label(region, region_where)
            if label not in class_of:
                raise DatasetError(f"{region_where}: label {label!r} is not in the class names {list(names)}")
            boxes.append(_region_box(region, width, height, region_where))
            ids.append(class_of[label])
        items.append(LabeledImage.from_arrays(image, width, height, boxes, ids, split))
    return DetectionDataset(names, tuple(items))


def _latest_annotation(task: dict[str, Any], where: str) -> dict[str, Any] | None:
    annotations = [
        a
        for a in _list(task.get("annotations", []), f"{where}: annotations")
        if isinstance(a, dict) and not a.get("was_cancelled") and not a.get("skipped")
    ]
    if not annotations:
        return None
    return max(annotations, key=lambda a: (_timestamp(a, where), _annotation_id(a)))


def _timestamp(annotation: dict[str, Any], where: str) -> float:
    value = annotation.get("updated_at") or annotation.get("created_at")
    if value is None:
        return -math.inf
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError as error:
        raise DatasetError(
            f"{where}: annotation {annotation.get('id', '?')}: updated_at: expected an ISO 8601 time, "
            f"got {value!r}"
        ) from error


def _annotation_id(annotation: dict[str, Any]) -> int:
    value = annotation.get("id")
    return value if isinstance(value, int) else -1


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DatasetError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _region_label(region: dict[str, Any], where: str) -> str:
    value = region.get("value")
    labels = value.get("rectanglelabels") if isinstance(value, dict) else None
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        raise DatasetError(f"{where}: value.rectanglelabels: expected one label, got {labels!r}")
    return labels[0]


def _region_box(
    region: dict[str, Any], width: int, height: int, where: str
) -> tuple[float, float, float, float]:
    """Return the region's axis-aligned box in pixels (the enclosing box when rotated)."""
    for key, size in (("original_width", width), ("original_height", height)):
        declared = region.get(key)
        if declared is not None and declared != size:
            raise DatasetError(
                f"{where}: {key}: the image file is {width}x{height} but the region was drawn on "
                f"{region.get('original_width')}x{region.get('original_height')} "
                "(wrong file or resized image?)"
            )
    value = region["value"]
    numbers = []
    for key in ("x", "y", "width", "height"):
        number = value.get(key)
        if not isinstance(number, int | float) or isinstance(number, bool) or not math.isfinite(number):
            raise DatasetError(f"{where}: value.{key}: expected a number (percent), got {number!r}")
        numbers.append(float(number))
    x, y = numbers[0] / 100 * width, numbers[1] / 100 * height
    w, h = numbers[2] / 100 * width, numbers[3] / 100 * height
    if w < 0 or h < 0:
        raise DatasetError(f"{where}: value.width, value.height: expected >= 0, got {numbers[2:]}")
    rotation = value.get("rotation") or 0.0
    if not isinstance(rotation, int | float) or not math.isfinite(rotation):
        raise DatasetError(f"{where}: value.rotation: expected degrees, got {rotation!r}")
    if rotation % 360 == 0:
        return fit_box_xyxy((x, y, x + w, y + h), width, height, where)
    # Clockwise on screen (y down) about the top-left corner (x, y).
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    corners = [
        (x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))
    ]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return fit_box_xyxy((min(xs), min(ys), max(xs), max(ys)), width, height, where)
