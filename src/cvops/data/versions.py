"""Content-addressed dataset versions and deterministic splits.

A version id depends on the data only, never on file names, file order or folder location:

- each image is its file's SHA-256 (any changed byte -> new id);
- each image's labels are the SHA-256 of their canonical text: the YOLO lines
  ``class cx cy w h`` with coordinates normalized to the image and rounded to
  :data:`LABEL_DECIMALS` digits, sorted, one per line. That text is a fixed point of the
  YOLO and COCO readers and writers of :mod:`cvops.data.formats`, so re-encoding the same
  labels (YOLO -> COCO -> YOLO, any box order) keeps the hash, while a box moved by more than
  about 1e-6 of the image side, or a changed class id, changes it;
- the manifest's canonical form is the class names plus the sorted ``(split, image hash,
  label hash)`` triples, as compact JSON; the version id is the first
  :data:`VERSION_ID_LENGTH` hex digits of its SHA-256. Moving an image to another split is a
  new version (a model trained on it saw different data).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvops.data.formats import YOLO_DECIMALS, DetectionDataset, LabeledImage, yolo_label_lines
from cvops.errors import DatasetError, DatasetNotFoundError

LABEL_DECIMALS = YOLO_DECIMALS
"""Digits of the normalized coordinates hashed for a label (the YOLO writer's precision)."""

VERSION_ID_LENGTH = 12
"""Hex digits of a version id (48 bits)."""

MANIFEST_SCHEMA_VERSION = 1

DEFAULT_SPLIT_FRACTIONS: Mapping[str, float] = MappingProxyType({"train": 0.8, "val": 0.2})

_SHA256 = r"^[0-9a-f]{64}$"
_CHUNK_BYTES = 1 << 20


MANIFEST_NAME = "manifest.json"
"""File name of a dataset's manifest inside its folder."""


class ManifestEntry(BaseModel):
    """One image of a dataset version.

    Attributes:
        path: The image file, relative to the manifest's root (POSIX), or absolute.
        split: Split name.
        width: Image width in pixels.
        height: Image height in pixels.
        box_count: Number of boxes.
        image_sha256: SHA-256 of the image file's bytes.
        label_sha256: SHA-256 of the canonical label text (see the module docstring).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    split: str = Field(min_length=1)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    box_count: int = Field(ge=0)
    image_sha256: str = Field(pattern=_SHA256)
    label_sha256: str = Field(pattern=_SHA256)


class DatasetManifest(BaseModel):
    """Every file of a dataset version with its hash, and the version id they add up to.

    Attributes:
        schema_version: Version of this file format.
        version_id: Short SHA-256 of the canonical manifest (see :func:`compute_version_id`).
        class_names: Class names, indexed by class id.
        entries: One entry per image, in dataset order.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(default=MANIFEST_SCHEMA_VERSION, ge=1, le=MANIFEST_SCHEMA_VERSION)
    version_id: str = Field(pattern=rf"^[0-9a-f]{{{VERSION_ID_LENGTH}}}$")
    class_names: tuple[str, ...] = Field(min_length=1)
    entries: tuple[ManifestEntry, ...]


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes, read in 1 MiB chunks.

    Raises:
        DatasetNotFoundError: When the file does not exist.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError as error:
        raise DatasetNotFoundError(f"{path}: no such file") from error
    return digest.hexdigest()


def canonical_label_text(item: LabeledImage) -> str:
    """Return an image's labels as canonical text: sorted YOLO lines, ``LABEL_DECIMALS`` digits."""
    return "".join(f"{line}\n" for line in sorted(yolo_label_lines(item, LABEL_DECIMALS)))


def label_sha256(item: LabeledImage) -> str:
    """Return the SHA-256 hex digest of an image's canonical label text."""
    return hashlib.sha256(canonical_label_text(item).encode("utf-8")).hexdigest()


def compute_version_id(class_names: tuple[str, ...], entries: tuple[ManifestEntry, ...]) -> str:
    """Return the version id: the short SHA-256 of class names and sorted content triples."""
    canonical = {
        "class_names": list(class_names),
        "images": sorted([e.split, e.image_sha256, e.label_sha256] for e in entries),
    }
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:VERSION_ID_LENGTH]


def dataset_manifest(dataset: DetectionDataset, root: Path | None = None) -> DatasetManifest:
    """Hash every image and label of a dataset into a manifest with its version id.

    Args:
        dataset: The dataset.
        root: Write entry paths relative to this folder (images outside it keep absolute
            paths); absolute paths when None. Paths never enter the version id.

    Raises:
        DatasetNotFoundError: When an image file is missing.
    """
    entries = tuple(
        ManifestEntry(
            path=_display_path(item.image_path, root),
            split=item.split,
            width=item.width,
            height=item.height,
            box_count=len(item),
            image_sha256=file_sha256(item.image_path),
            label_sha256=label_sha256(item),
        )
        for item in dataset.items
    )
    return DatasetManifest(
        version_id=compute_version_id(dataset.class_names, entries),
        class_names=dataset.class_names,
        entries=entries,
    )


def _display_path(path: Path, root: Path | None) -> str:
    absolute = path.resolve()
    if root is not None:
        try:
            return absolute.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return absolute.as_posix()


def write_manifest(manifest: DatasetManifest, path: Path) -> None:
    """Write a manifest as indented JSON (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_manifest(path: Path) -> DatasetManifest:
    """Read a manifest and check that its version id matches its entries.

    Raises:
        DatasetNotFoundError: When the file does not exist.
        DatasetError: Naming the file and field, for bad JSON, a field of the wrong form, or a
            version id that does not match the entries (an edited manifest).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise DatasetNotFoundError(f"{path}: no such file") from error
    try:
        manifest = DatasetManifest.model_validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise DatasetError(f"{path}: {location}: {first['msg']}") from error
    expected = compute_version_id(manifest.class_names, manifest.entries)
    if manifest.version_id != expected:
        raise DatasetError(
            f"{path}: version_id: expected {expected} (computed from the entries), got {manifest.version_id}"
        )
    return manifest


def split_dataset(
    dataset: DetectionDataset,
    fractions: Mapping[str, float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
) -> DetectionDataset:
    """Assign every image to a split by hashing its content, and return the re-split dataset.

    Each image draws ``u = SHA-256("<seed>:<image sha256>")`` read as a number in [0, 1) and
    falls in the split whose share of [0, 1) holds it, splits laid out in sorted name order.
    So an image's split depends only on its own bytes, the seed and the fractions: adding or
    removing images never moves the others, identical images land together (no train/val
    leak), and growing one fraction only moves images into it. Small datasets deviate from the
    fractions by chance, like any random split.

    Args:
        dataset: The dataset; its current splits are ignored.
        fractions: Share of images per split name; each > 0, summing to 1.
        seed: Another seed gives another (equally deterministic) split.

    Raises:
        DatasetError: For empty fractions, a share <= 0 or shares not summing to 1.
    """
    if not fractions or any(not share > 0 for share in fractions.values()):
        raise DatasetError(f"fractions: expected shares > 0 per split, got {dict(fractions)}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise DatasetError(f"fractions: expected shares summing to 1, got {total} from {dict(fractions)}")
    bounds: list[tuple[float, str]] = []
    upper = 0.0
    for name in sorted(fractions):
        upper += fractions[name] / total
        bounds.append((upper, name))
    items = []
    for item in dataset.items:
        draw = hashlib.sha256(f"{seed}:{file_sha256(item.image_path)}".encode("ascii")).digest()
        u = int.from_bytes(draw[:8], "big") / 2**64
        split = next((name for bound, name in bounds if u < bound), bounds[-1][1])
        items.append(LabeledImage(item.image_path, item.width, item.height, item.xyxy, item.class_ids, split))
    return DetectionDataset(dataset.class_names, tuple(items))
