"""Dataset steps of the loop: pull and version a dataset, grow it with newly labeled images."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cvops.data.formats import DetectionDataset, LabeledImage, merge_datasets, read_dataset, write_yolo
from cvops.data.versions import MANIFEST_NAME, dataset_manifest, file_sha256, write_manifest

TRAIN_SPLIT = "train"
HASH_NAME_LENGTH = 16


@dataclass(frozen=True, slots=True)
class VersionedDataset:
    """A dataset folder with its manifest written.

    Attributes:
        root: The folder holding ``data.yaml`` (or the COCO file) and the manifest.
        version_id: Content-addressed version id (same data, same id).
        image_count: Images over all splits.
        box_count: Boxes over all splits.
    """

    root: Path
    version_id: str
    image_count: int
    box_count: int


def version_dataset(root: Path) -> VersionedDataset:
    """Hash the dataset in ``root``, write its manifest there and return its version."""
    dataset = read_dataset(root)
    manifest = dataset_manifest(dataset, root)
    write_manifest(manifest, root / MANIFEST_NAME)
    return VersionedDataset(root, manifest.version_id, len(dataset), dataset.box_count)


def pull_versioned_dataset(uri: str, out_dir: Path, timeout_s: float = 60.0) -> VersionedDataset:
    """Pull a dataset from ``uri`` into ``out_dir`` (:func:`~cvops.data.fetch.pull_dataset`), version it."""
    from cvops.data.fetch import pull_dataset

    return version_dataset(pull_dataset(uri, out_dir, timeout_s=timeout_s))


def grow_dataset(base: Path, labeled: Path, out_dir: Path) -> VersionedDataset:
    """Write ``base`` plus the newly ``labeled`` images (as training images) to ``out_dir``, versioned.

    Images are matched by content, not name: a labeled image whose bytes are already in ``base``
    replaces the base's labels (a corrected annotation wins). Labeled images are stored under
    their content hash (``<sha256[:16]><suffix>``), so frames of different sources that share a
    file name never collide, and the same frame keeps one name over iterations. The base keeps
    its splits; labeled images join the training split.

    Args:
        base: The dataset the current model was trained on (a folder or dataset file).
        labeled: The images labeled since (a folder or dataset file, same class names).
        out_dir: New folder in the Ultralytics layout.
    """
    base_set = read_dataset(base)
    labeled_set = read_dataset(labeled)
    staging = out_dir / ".labeled"
    staging.mkdir(parents=True, exist_ok=True)
    new_items = []
    for item in labeled_set.items:
        digest = file_sha256(item.image_path)
        named = staging / f"{digest[:HASH_NAME_LENGTH]}{item.image_path.suffix.lower()}"
        shutil.copyfile(item.image_path, named)
        new_items.append(LabeledImage(named, item.width, item.height, item.xyxy, item.class_ids, TRAIN_SPLIT))
    relabeled = {file_sha256(item.image_path) for item in new_items}
    kept = tuple(i for i in base_set.items if file_sha256(i.image_path) not in relabeled)
    merged = merge_datasets(
        [
            DetectionDataset(base_set.class_names, kept),
            DetectionDataset(labeled_set.class_names, tuple(new_items)),
        ]
    )
    write_yolo(merged, out_dir)
    shutil.rmtree(staging)
    return version_dataset(out_dir)


def pull_training_base(
    seed_uri: str, out_dir: Path, model_name: str, tracking_uri: str | None = None
) -> VersionedDataset:
    """Pull the dataset the next model builds on: the champion's, else the seed dataset.

    Each loop iteration registers its grown dataset's URI in the challenger's lineage, so once a
    challenger has become champion the next iteration starts from everything labeled so far.

    Args:
        seed_uri: The first iteration's dataset.
        out_dir: New or empty folder to pull into.
        model_name: Registered model name.
        tracking_uri: MLflow tracking URI; the embedded store when None.
    """
    from cvops.errors import RegistryNotFoundError
    from cvops.registry.mlflow_registry import CHAMPION, ModelRegistry

    uri = seed_uri
    try:
        champion = ModelRegistry(tracking_uri).show(model_name, CHAMPION)
    except RegistryNotFoundError:
        pass
    else:
        uri = champion.lineage.dataset_uri or seed_uri
    return pull_versioned_dataset(uri, out_dir)
