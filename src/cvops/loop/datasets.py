"""Dataset steps of the loop: pull and version a dataset, grow it with newly labeled images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cvops.data.formats import DetectionDataset, LabeledImage, merge_datasets, read_dataset, write_yolo
from cvops.data.versions import MANIFEST_NAME, dataset_manifest, write_manifest

TRAIN_SPLIT = "train"


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

    The base keeps its splits (its validation split stays the validation split); labeled images
    join the training split. Images of ``labeled`` already in ``base`` (same file name) replace
    the base's labels: a corrected annotation wins.

    Args:
        base: The dataset the current model was trained on (a folder or dataset file).
        labeled: The images labeled since (a folder or dataset file, same class names).
        out_dir: New folder in the Ultralytics layout.
    """
    base_set = read_dataset(base)
    labeled_set = read_dataset(labeled)
    new_items = tuple(
        LabeledImage(i.image_path, i.width, i.height, i.xyxy, i.class_ids, TRAIN_SPLIT)
        for i in labeled_set.items
    )
    relabeled = {item.image_path.name for item in new_items}
    kept = DetectionDataset(
        base_set.class_names, tuple(i for i in base_set.items if i.image_path.name not in relabeled)
    )
    merged = merge_datasets([kept, DetectionDataset(labeled_set.class_names, new_items)])
    write_yolo(merged, out_dir)
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
