"""Turn a ``--reference``/``--current`` argument into the frames or feature tables it names.

A source is one of:

- a feature folder (holding ``frames.parquet``) or a ``.parquet`` frame table: read as is;
- a dataset: a YOLO ``data.yaml``, a COCO ``.json``, or a folder holding either (its images);
- a ``.txt`` list of image paths, one per line (relative paths are read from the list's folder);
  ``candidates.txt`` written by ``cvops drift`` is such a list;
- a folder of images (its top-level images; when it has none, every image below it).
"""

from __future__ import annotations

from pathlib import Path

from cvops.data.formats import locate_dataset_files, read_dataset
from cvops.errors import DatasetError, InvalidInputError
from cvops.images import IMAGE_SUFFIXES
from cvops.monitoring.tables import FRAMES_FILE

_DATASET_SUFFIXES = frozenset({".yaml", ".yml", ".json"})


def is_feature_source(source: Path) -> bool:
    """Return whether ``source`` holds precomputed feature tables (Parquet)."""
    return source.suffix == ".parquet" or (source.is_dir() and (source / FRAMES_FILE).is_file())


def frame_paths(source: Path) -> list[Path]:
    """Return the image files a source names, in a stable order.

    Raises:
        InvalidInputError: When the source does not exist, is of an unknown kind, or names no image.
    """
    if not source.exists():
        raise InvalidInputError(
            f"{source}: expected a folder, dataset, list or feature file, got no such path"
        )
    if source.is_file():
        if source.suffix == ".txt":
            return _listed_paths(source)
        if source.suffix in _DATASET_SUFFIXES:
            return _dataset_paths(source)
        suffix = source.suffix or "no suffix"
        raise InvalidInputError(
            f"{source}: expected a .parquet, .txt, .yaml/.yml or .json file, got {suffix}"
        )
    if _is_dataset_folder(source):
        return _dataset_paths(source)
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InvalidInputError(f"{source}: expected image files in the folder, found none")
    return images


def _is_dataset_folder(folder: Path) -> bool:
    try:
        locate_dataset_files(folder)
    except DatasetError:
        return False
    return True


def _dataset_paths(source: Path) -> list[Path]:
    try:
        dataset = read_dataset(source)
    except DatasetError as error:
        raise InvalidInputError(f"{source}: not a readable dataset: {error}") from error
    paths = [item.image_path for item in dataset.items]
    if not paths:
        raise InvalidInputError(f"{source}: expected a dataset with images, got none")
    return paths


def _listed_paths(list_file: Path) -> list[Path]:
    lines = [line.strip() for line in list_file.read_text(encoding="utf-8").splitlines()]
    paths = [Path(line) if Path(line).is_absolute() else list_file.parent / line for line in lines if line]
    if not paths:
        raise InvalidInputError(f"{list_file}: expected one image path per line, got an empty list")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InvalidInputError(
            f"{list_file}: expected existing image files, {len(missing)} missing: {missing[0]}"
        )
    return paths
