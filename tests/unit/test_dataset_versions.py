"""Content-addressed dataset versions and hash-based splits, on coco8 and synthetic data."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cvops.data.formats import (
    DetectionDataset,
    LabeledImage,
    merge_datasets,
    read_coco,
    read_yolo,
    write_coco,
    write_yolo,
)
from cvops.data.synthetic import generate_scenes
from cvops.data.versions import (
    DatasetManifest,
    canonical_label_text,
    dataset_manifest,
    label_sha256,
    read_manifest,
    split_dataset,
    write_manifest,
)
from cvops.errors import DatasetError
from tests.conftest import fixture_path


@pytest.fixture(scope="module")
def coco8() -> DetectionDataset:
    return read_yolo(fixture_path("coco8/coco8.yaml"))


@pytest.fixture(scope="module")
def coco8_id(coco8: DetectionDataset) -> str:
    return dataset_manifest(coco8).version_id


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> DetectionDataset:
    return read_yolo(generate_scenes(tmp_path_factory.mktemp("syn"), 150, 10, 32, seed=3).data_yaml)


def _with_item(dataset: DetectionDataset, index: int, item: LabeledImage) -> DetectionDataset:
    items = list(dataset.items)
    items[index] = item
    return DetectionDataset(dataset.class_names, tuple(items))


def test_manifest_lists_every_image_and_label_hash(coco8: DetectionDataset, coco8_id: str) -> None:
    manifest = dataset_manifest(coco8, root=fixture_path("coco8"))
    assert len(manifest.entries) == 8
    assert len(coco8_id) == 12
    assert manifest.version_id == coco8_id  # paths never enter the id
    first = manifest.entries[0]
    assert (first.path, first.split, first.width, first.height, first.box_count) == (
        "images/train/000000000009.jpg", "train", 640, 480, 8,
    )  # fmt: skip
    assert len({e.image_sha256 for e in manifest.entries}) == 8
    assert manifest.class_names == coco8.class_names


def _via_coco(dataset: DetectionDataset, folder: Path) -> DetectionDataset:
    return merge_datasets([read_coco(f) for f in write_coco(dataset, folder)])


SAME_DATA_CASES: list[tuple[str, Callable[[DetectionDataset, Path], DetectionDataset]]] = [
    ("reversed-file-order", lambda d, _: DetectionDataset(d.class_names, d.items[::-1])),
    ("copied-elsewhere", lambda d, tmp: read_yolo(write_yolo(d, tmp / "copy"))),
    ("re-encoded-as-coco", lambda d, tmp: _via_coco(d, tmp / "coco")),
    ("yolo-coco-yolo", lambda d, tmp: read_yolo(write_yolo(_via_coco(d, tmp / "c"), tmp / "y"))),
    ("boxes-reordered", lambda d, _: _with_item(d, 0, LabeledImage.from_arrays(
        d.items[0].image_path, 640, 480, d.items[0].xyxy[::-1], d.items[0].class_ids[::-1], "train"))),
]  # fmt: skip


@pytest.mark.parametrize("change", [c[1] for c in SAME_DATA_CASES], ids=[c[0] for c in SAME_DATA_CASES])
def test_same_data_gives_the_same_version_id(
    coco8: DetectionDataset,
    coco8_id: str,
    tmp_path: Path,
    change: Callable[[DetectionDataset, Path], DetectionDataset],
) -> None:
    assert dataset_manifest(change(coco8, tmp_path)).version_id == coco8_id


def _flip_one_image_byte(d: DetectionDataset, tmp: Path) -> DetectionDataset:
    source = d.items[3].image_path
    copy = tmp / source.name
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 1  # one bit in the middle of the JPEG entropy data
    copy.write_bytes(bytes(data))
    return _with_item(d, 3, replace(d.items[3], image_path=copy))


def _move_box(d: DetectionDataset, dx: float) -> DetectionDataset:
    item = d.items[0]
    boxes = item.xyxy.copy()
    boxes[1, [0, 2]] += dx
    return _with_item(
        d, 0, LabeledImage.from_arrays(item.image_path, 640, 480, boxes, item.class_ids, "train")
    )


def _change_class(d: DetectionDataset) -> DetectionDataset:
    item = d.items[0]
    ids = item.class_ids.copy()
    ids[0] = (ids[0] + 1) % len(d.class_names)
    return _with_item(d, 0, LabeledImage.from_arrays(item.image_path, 640, 480, item.xyxy, ids, "train"))


NEW_DATA_CASES: list[tuple[str, Callable[[DetectionDataset, Path], DetectionDataset]]] = [
    ("one-image-byte", _flip_one_image_byte),
    ("box-moved-1px", lambda d, _: _move_box(d, 1.0)),
    ("box-moved-0.01px", lambda d, _: _move_box(d, 0.01)),
    ("class-id", lambda d, _: _change_class(d)),
    ("class-name", lambda d, _: DetectionDataset(("human", *d.class_names[1:]), d.items)),
    ("image-to-other-split", lambda d, _: _with_item(d, 0, replace(d.items[0], split="val"))),
    ("image-removed", lambda d, _: DetectionDataset(d.class_names, d.items[1:])),
    ("box-removed", lambda d, _: _with_item(d, 0, LabeledImage.from_arrays(
        d.items[0].image_path, 640, 480, d.items[0].xyxy[1:], d.items[0].class_ids[1:], "train"))),
]  # fmt: skip


@pytest.mark.parametrize("change", [c[1] for c in NEW_DATA_CASES], ids=[c[0] for c in NEW_DATA_CASES])
def test_any_change_gives_a_new_version_id(
    coco8: DetectionDataset,
    coco8_id: str,
    tmp_path: Path,
    change: Callable[[DetectionDataset, Path], DetectionDataset],
) -> None:
    assert dataset_manifest(change(coco8, tmp_path)).version_id != coco8_id


def test_label_hash_is_the_sorted_canonical_yolo_text(coco8: DetectionDataset) -> None:
    item = coco8.items[4]  # 000000000036.jpg: umbrella and person
    assert (
        canonical_label_text(item)
        == "0 0.671279 0.617945 0.645759 0.726859\n25 0.475759 0.414523 0.951518 0.672422\n"
    )
    empty = LabeledImage.from_arrays(item.image_path, item.width, item.height, [], [], "val")
    assert canonical_label_text(empty) == ""
    assert label_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_manifest_file_round_trip(coco8: DetectionDataset, tmp_path: Path) -> None:
    manifest = dataset_manifest(coco8, fixture_path("coco8"))
    write_manifest(manifest, tmp_path / "manifest.json")
    assert read_manifest(tmp_path / "manifest.json") == manifest


def _tamper(edit: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))

    return apply


MANIFEST_CASES = [
    ("edited-label-hash", _tamper(lambda d: d["entries"][0].update(label_sha256="0" * 64)),  # type: ignore[index]
     r"manifest\.json: version_id: expected [0-9a-f]{12} \(computed from the entries\)"),
    ("renamed-class", _tamper(lambda d: d["class_names"].__setitem__(0, "human")),  # type: ignore[index]
     r"version_id: expected"),
    ("extra-field", _tamper(lambda d: d.update(comment="hi")), r"manifest\.json: comment: Extra inputs"),
    ("short-hash", _tamper(lambda d: d["entries"][1].update(image_sha256="abc")),  # type: ignore[index]
     r"manifest\.json: entries\.1\.image_sha256: String should match pattern"),
    ("not-json", lambda p: p.write_text("{"), r"manifest\.json: \(document\): Invalid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "message"), [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES]
)
def test_read_manifest_refuses_edited_or_malformed_files(
    coco8: DetectionDataset, tmp_path: Path, tamper: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / "manifest.json"
    write_manifest(dataset_manifest(coco8), path)
    tamper(path)
    with pytest.raises(DatasetError, match=message):
        read_manifest(path)


def _splits(dataset: DetectionDataset) -> dict[str, str]:
    return {item.image_path.name: item.split for item in dataset.items}


def test_split_is_deterministic_and_close_to_the_fractions(synthetic: DetectionDataset) -> None:
    first = split_dataset(synthetic, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=0)
    again = split_dataset(
        synthetic, {"test": 0.1, "val": 0.2, "train": 0.7}, seed=0
    )  # dict order is irrelevant
    assert _splits(first) == _splits(again)
    counts = {s: len(first.select_split(s)) for s in ("train", "val", "test")}
    assert sum(counts.values()) == 160
    assert 0.6 < counts["train"] / 160 < 0.8
    assert 0.1 < counts["val"] / 160 < 0.3
    assert 0.03 < counts["test"] / 160 < 0.17
    other_seed = split_dataset(synthetic, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=1)
    assert _splits(other_seed) != _splits(first)


def test_adding_images_never_moves_existing_ones(synthetic: DetectionDataset) -> None:
    small = DetectionDataset(synthetic.class_names, synthetic.items[:100])
    before = _splits(split_dataset(small))
    after = _splits(split_dataset(synthetic))
    assert {name: after[name] for name in before} == before
    assert set(after.values()) == {"train", "val"}


def test_growing_a_fraction_only_moves_images_into_it(synthetic: DetectionDataset) -> None:
    small_val = _splits(split_dataset(synthetic, {"train": 0.9, "val": 0.1}))
    # Sorted layout puts "train" first: [0, t) train, [t, 1) val, so shrinking t only adds to val.
    large_val = _splits(split_dataset(synthetic, {"train": 0.7, "val": 0.3}))
    assert all(large_val[name] == "val" for name, split in small_val.items() if split == "val")


def test_identical_images_share_a_split(coco8: DetectionDataset, tmp_path: Path) -> None:
    copies = []
    for index, item in enumerate(coco8.items):
        copy = tmp_path / f"copy_{index}.jpg"
        shutil.copyfile(item.image_path, copy)
        copies.append(replace(item, image_path=copy))
    doubled = DetectionDataset(coco8.class_names, coco8.items + tuple(copies))
    result = split_dataset(doubled, {"a": 0.5, "b": 0.5}, seed=7)
    assert [i.split for i in result.items[:8]] == [i.split for i in result.items[8:]]
    for item, original in zip(result.items, doubled.items, strict=True):
        np.testing.assert_array_equal(item.xyxy, original.xyxy)


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({}, "expected shares > 0"),
        ({"train": 1.0, "val": 0.0}, "expected shares > 0"),
        ({"train": 0.8, "val": 0.1}, "summing to 1, got 0.9"),
        ({"train": 0.5, "../val": 0.5}, "split: expected letters"),
    ],
    ids=["empty", "zero-share", "sum-below-1", "bad-name"],
)
def test_split_refuses_bad_fractions(
    coco8: DetectionDataset, fractions: dict[str, float], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        split_dataset(coco8, fractions)


def test_manifest_model_refuses_a_bad_version_id() -> None:
    with pytest.raises(ValueError, match="version_id"):
        DatasetManifest(version_id="XYZ", class_names=("a",), entries=())
