"""The loop's dataset steps: the training set grows with new labels; the next run starts from the champion."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvops.data.formats import read_dataset
from cvops.data.synthetic import generate_scenes
from cvops.loop.datasets import grow_dataset, pull_training_base, version_dataset
from cvops.registry.mlflow_registry import ModelRegistry, embedded_tracking_uri
from cvops.registry.records import Lineage

pytestmark = pytest.mark.integration


def test_grow_adds_labeled_images_to_train_and_keeps_the_validation_split(tmp_path: Path) -> None:
    base = generate_scenes(tmp_path / "base", 6, 3, 64, seed=1)
    labeled = generate_scenes(tmp_path / "labeled", 4, 1, 64, seed=2)
    grown = grow_dataset(base.root, labeled.root, tmp_path / "grown")
    dataset = read_dataset(grown.root)
    counts = {split: len(dataset.select_split(split)) for split in dataset.splits}
    # 6 base + 4 + 1 labeled images in train (labeled images all become training images), 3 in val;
    # both sets name their files train_00000.png...: content, not names, tells images apart
    assert counts == {"train": 11, "val": 3}
    assert grown.version_id != version_dataset(base.root).version_id
    assert (tmp_path / "grown" / "manifest.json").is_file()
    again = grow_dataset(base.root, labeled.root, tmp_path / "again")
    assert again.version_id == grown.version_id  # same data, same version


def test_a_relabeled_image_replaces_its_old_labels(tmp_path: Path) -> None:
    base = generate_scenes(tmp_path / "base", 4, 2, 64, seed=1)
    relabeled = generate_scenes(tmp_path / "relabeled", 4, 2, 64, seed=1)  # same names, same images
    label = relabeled.root / "labels" / "train" / "train_00000.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n")
    grown = read_dataset(grow_dataset(base.root, relabeled.root, tmp_path / "grown").root)
    names = [item.image_path.name for item in grown.items]
    assert len(names) == len(set(names)) == 6  # no image twice: the relabeled copies replaced
    assert sum(name.startswith("train_") for name in names) == 0  # every train image was relabeled
    one_box = [item for item in grown.items if item.split == "train" and len(item) == 1]
    assert any(item.class_ids[0] == 0 for item in one_box)


def test_the_next_iteration_pulls_the_champions_dataset(yolox_package: Path, tmp_path: Path) -> None:
    seed = generate_scenes(tmp_path / "seed", 4, 2, 64, seed=1)
    grown = generate_scenes(tmp_path / "grown", 8, 2, 64, seed=3)
    uri = embedded_tracking_uri(tmp_path / "state")
    first = pull_training_base(str(seed.root), tmp_path / "pull-1", "m", uri)
    assert first.image_count == 6
    registry = ModelRegistry(uri, state_dir=tmp_path / "state")
    registry.register(yolox_package, "m", Lineage(dataset_uri=str(grown.root)))
    registry.promote("m", 1, who="test", why="first")
    second = pull_training_base(str(seed.root), tmp_path / "pull-2", "m", uri)
    assert second.image_count == 10
