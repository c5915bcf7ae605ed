"""DetectionDataset and its YOLO / COCO readers and writers, on the real coco8 fixture."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cvops.data.formats import (
    DetectionDataset,
    LabeledImage,
    merge_datasets,
    read_coco,
    read_dataset,
    read_yolo,
    write_coco,
    write_yolo,
    yolo_label_path,
)
from cvops.data.synthetic import generate_scenes
from cvops.detection.coco import COCO80_CATEGORY_IDS, COCO80_NAMES
from cvops.errors import DatasetError, DatasetNotFoundError
from tests.conftest import fixture_path

# The fixture's COCO JSON uses the older category names (motorbike, sofa, tvmonitor, ...).
COCO_JSON_RENAMES = {
    3: "motorbike",
    4: "aeroplane",
    57: "sofa",
    58: "pottedplant",
    60: "diningtable",
    62: "tvmonitor",
}


@pytest.fixture(scope="module")
def coco8() -> DetectionDataset:
    return read_yolo(fixture_path("coco8/coco8.yaml"))


@pytest.fixture
def coco8_copy(tmp_path: Path) -> Path:
    """A writable copy of the coco8 fixture folder, to break on purpose."""
    source = fixture_path("coco8")
    target = tmp_path / "coco8"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("reference_detections", "*.md", "LICENSE"))
    return target


def assert_same(a: DetectionDataset, b: DetectionDataset, atol_px: float = 0.0) -> None:
    assert a.class_names == b.class_names
    assert [i.image_path.name for i in a.items] == [i.image_path.name for i in b.items]
    for x, y in zip(a.items, b.items, strict=True):
        assert (x.split, x.width, x.height) == (y.split, y.width, y.height)
        np.testing.assert_array_equal(x.class_ids, y.class_ids)
        if atol_px == 0.0:
            np.testing.assert_array_equal(x.xyxy, y.xyxy)
        else:
            np.testing.assert_allclose(x.xyxy, y.xyxy, rtol=0, atol=atol_px)


def test_coco8_yolo_reads_every_image_box_and_name(coco8: DetectionDataset) -> None:
    assert coco8.class_names == COCO80_NAMES
    assert coco8.splits == ("train", "val")
    assert (len(coco8), coco8.box_count) == (8, 30)
    assert [len(coco8.select_split(s)) for s in coco8.splits] == [4, 4]
    first = coco8.items[0]
    assert (first.image_path.name, first.width, first.height, len(first)) == ("000000000009.jpg", 640, 480, 8)
    assert (first.xyxy.dtype, first.class_ids.dtype) == (np.float32, np.int64)
    assert not first.xyxy.flags.writeable


def test_coco8_yolo_labels_agree_with_the_coco_json_ground_truth(coco8: DetectionDataset) -> None:
    from_json = merge_datasets(
        [read_coco(fixture_path(f"coco8/annotations_coco_{split}.json")) for split in ("train", "val")]
    )
    expected_names = tuple(COCO_JSON_RENAMES.get(i, n) for i, n in enumerate(COCO80_NAMES))
    assert from_json.class_names == expected_names  # 91-id categories -> class ids 0..79
    assert_same(DetectionDataset(expected_names, coco8.items), from_json, atol_px=1e-3)


def test_yolo_round_trip_is_within_documented_precision_and_a_fixed_point(
    coco8: DetectionDataset, tmp_path: Path
) -> None:
    once = read_yolo(write_yolo(coco8, tmp_path / "once"))
    for original, back in zip(coco8.items, once.items, strict=True):
        side = max(original.width, original.height)
        np.testing.assert_allclose(original.xyxy, back.xyxy, rtol=0, atol=1e-6 * side + 1e-4)
    assert_same(coco8, once, atol_px=1e-6 * 640 + 1e-4)
    twice = read_yolo(write_yolo(once, tmp_path / "twice"))
    for split in ("train", "val"):
        for label in sorted((tmp_path / "once" / "labels" / split).iterdir()):
            assert label.read_bytes() == (tmp_path / "twice" / "labels" / split / label.name).read_bytes()
    assert_same(once, twice)


def test_coco_round_trip_is_bit_identical(coco8: DetectionDataset, tmp_path: Path) -> None:
    files = write_coco(coco8, tmp_path)
    assert [f.name for f in files] == ["annotations_coco_train.json", "annotations_coco_val.json"]
    back = merge_datasets([read_coco(f) for f in files])
    assert_same(coco8, back)
    assert read_dataset(tmp_path).box_count == 30  # the folder is found as COCO


def test_coco_writer_can_use_the_91_id_mapping_of_the_fixture(
    coco8: DetectionDataset, tmp_path: Path
) -> None:
    (written, _) = write_coco(coco8, tmp_path, category_ids=COCO80_CATEGORY_IDS)
    ours = json.loads(written.read_text())
    reference = json.loads(fixture_path("coco8/annotations_coco_train.json").read_text())
    assert [a["category_id"] for a in ours["annotations"]] == [
        a["category_id"] for a in reference["annotations"]
    ]
    for mine, theirs in zip(ours["annotations"], reference["annotations"], strict=True):
        np.testing.assert_allclose(mine["bbox"], theirs["bbox"], atol=1e-3)


def test_synthetic_png_dataset_survives_yolo_to_coco_to_yolo(tmp_path: Path) -> None:
    synthetic = read_yolo(generate_scenes(tmp_path / "syn", 6, 3, 64, seed=1).data_yaml)
    via_coco = merge_datasets([read_coco(f) for f in write_coco(synthetic, tmp_path / "coco")])
    assert_same(synthetic, via_coco)
    back = read_yolo(write_yolo(via_coco, tmp_path / "yolo"))
    assert_same(synthetic, back, atol_px=1e-6 * 64 + 1e-5)


def test_read_dataset_finds_the_dataset_file_of_a_folder(coco8_copy: Path, tmp_path: Path) -> None:
    assert len(read_dataset(coco8_copy)) == 8  # coco8.yaml, whose 'path' does not exist here
    assert len(read_dataset(coco8_copy / "annotations_coco_val.json")) == 4
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no data\.yaml or COCO annotations JSON found"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match="no such file or folder"):
        read_dataset(tmp_path / "missing")


def test_yolo_image_list_files_and_background_images(coco8_copy: Path) -> None:
    (coco8_copy / "train.txt").write_text("./images/train/000000000009.jpg\nimages/train/000000000025.jpg\n")
    (coco8_copy / "labels" / "train" / "000000000025.txt").unlink()  # no label file: a background image
    (coco8_copy / "coco8.yaml").write_text(
        "train: train.txt\nnames: " + json.dumps(list(COCO80_NAMES)) + "\n"
    )
    dataset = read_yolo(coco8_copy / "coco8.yaml")
    assert [len(item) for item in dataset.items] == [8, 0]


def test_boxes_overshooting_the_image_by_float_noise_are_clipped(coco8_copy: Path) -> None:
    label = coco8_copy / "labels" / "val" / "000000000036.txt"  # 481 x 640 image
    label.write_text("0 0.5005 0.5 1.0 1.0\n")  # x2 = 481.24 px: within the 1 px tolerance
    item = read_yolo(coco8_copy / "coco8.yaml").select_split("val").items[0]
    np.testing.assert_allclose(item.xyxy, [[0.2405, 0, 481, 640]], atol=1e-3)


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _edit_coco(mutate: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / "annotations_coco_val.json"
        doc = json.loads(path.read_text())
        mutate(doc)
        path.write_text(json.dumps(doc, indent=1))

    return edit


TRAIN_LABEL = "labels/train/000000000009.txt"
YOLO_CASES = [
    ("class-not-in-names", lambda r: _replace_line(r / TRAIN_LABEL, 2, "80 0.5 0.5 0.1 0.1"),
     rf"{TRAIN_LABEL}:2: class id 80 is not in names"),
    ("negative-class", lambda r: _replace_line(r / TRAIN_LABEL, 1, "-1 0.5 0.5 0.1 0.1"),
     rf"{TRAIN_LABEL}:1: class id -1 is not in names"),
    ("fractional-class", lambda r: _replace_line(r / TRAIN_LABEL, 1, "1.5 0.5 0.5 0.1 0.1"),
     rf"{TRAIN_LABEL}:1: class id: expected an integer"),
    ("pixel-coordinates", lambda r: _replace_line(r / TRAIN_LABEL, 3, "0 320 240 64 48"),
     rf"{TRAIN_LABEL}:3: non-normalized coordinates"),
    ("box-outside-image", lambda r: _replace_line(r / TRAIN_LABEL, 1, "0 0.01 0.5 0.5 0.1"),
     rf"{TRAIN_LABEL}:1: label out of range"),
    ("four-fields", lambda r: _replace_line(r / TRAIN_LABEL, 1, "0 0.5 0.5 0.1"),
     rf"{TRAIN_LABEL}:1: expected 5 fields"),
    ("not-a-number", lambda r: _replace_line(r / TRAIN_LABEL, 1, "0 0.5 abc 0.1 0.1"),
     rf"{TRAIN_LABEL}:1: expected numbers"),
    ("label-without-image", lambda r: (r / "images/train/000000000025.jpg").unlink(),
     r"labels/train/000000000025\.txt: missing image for this label"),
    ("bad-yaml", lambda r: (r / "coco8.yaml").write_text("names: [a, b\ntrain: images/train\n"),
     r"coco8\.yaml: not valid YAML"),
    ("names-not-strings", lambda r: (r / "coco8.yaml").write_text("train: images/train\nnames: {0: on}\n"),
     r"coco8\.yaml: names\[0\]: expected a string, got True"),
    ("nc-mismatch", lambda r: (r / "coco8.yaml").write_text("train: images/train\nnc: 3\nnames: [a, b]\n"),
     r"coco8\.yaml: nc: expected 2"),
    ("missing-split-folder", lambda r: shutil.rmtree(r / "images/val"),
     r"coco8\.yaml: val: .*images/val is not an image folder"),
    ("no-images-folder", lambda r: (r / "coco8.yaml").write_text("train: labels/train\nnames: [a]\n"),
     r"coco8\.yaml: train: .*labels/train: expected image folders under an 'images' folder"),
    ("not-an-image", lambda r: (r / "images/val/000000000036.jpg").write_bytes(b"not a jpeg"),
     r"labels/val/000000000036\.txt: .*000000000036\.jpg is not a readable image"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in YOLO_CASES], ids=[c[0] for c in YOLO_CASES])
def test_malformed_yolo_names_the_file_and_line(
    coco8_copy: Path, mutate: Callable[[Path], None], message: str
) -> None:
    mutate(coco8_copy)
    with pytest.raises(DatasetError, match=message):
        read_yolo(coco8_copy / "coco8.yaml")


def _set(path: list[str | int], value: object) -> Callable[[dict[str, object]], None]:
    def mutate(doc: dict[str, object]) -> None:
        target: object = doc
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]

    return mutate


COCO_FILE = "annotations_coco_val.json"
COCO_CASES = [
    ("bad-json", lambda r: (r / COCO_FILE).write_text('{"images": [\n{"id": 1,}\n]}'),
     rf"{COCO_FILE}: bad JSON at line 2, column 10"),
    ("missing-image", _edit_coco(_set(["images", 1, "file_name"], "images/val/gone.jpg")),
     rf"{COCO_FILE}: images\[1\]\.file_name: missing image .*gone\.jpg"),
    ("category-not-in-categories", _edit_coco(_set(["annotations", 2, "category_id"], 12)),
     rf"{COCO_FILE}: annotations\[2\]\.category_id: 12 is not in categories"),
    ("unknown-image-id", _edit_coco(_set(["annotations", 0, "image_id"], 999)),
     rf"{COCO_FILE}: annotations\[0\]\.image_id: no image with id 999"),
    ("box-outside-image", _edit_coco(_set(["annotations", 0, "bbox"], [400.0, 10.0, 100.0, 10.0])),
     rf"{COCO_FILE}: annotations\[0\]\.bbox: label out of range"),
    ("negative-width", _edit_coco(_set(["annotations", 0, "bbox"], [10.0, 10.0, -5.0, 10.0])),
     rf"{COCO_FILE}: annotations\[0\]\.bbox: expected \[x, y, width, height\]"),
    ("wrong-image-size", _edit_coco(_set(["images", 0, "width"], 480)),
     rf"{COCO_FILE}: images\[0\]: width, height: expected 481x640 \(the image file\), got 480x640"),
    ("string-id", _edit_coco(_set(["categories", 0, "id"], "1")),
     rf"{COCO_FILE}: categories\[0\]\.id: expected an integer"),
    ("no-images-list", _edit_coco(_set(["images"], {"id": 1})),
     rf"{COCO_FILE}: images: expected a list of objects"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in COCO_CASES], ids=[c[0] for c in COCO_CASES])
def test_malformed_coco_names_the_file_and_field(
    coco8_copy: Path, mutate: Callable[[Path], None], message: str
) -> None:
    mutate(coco8_copy)
    with pytest.raises(DatasetError, match=message):
        read_coco(coco8_copy / COCO_FILE)


def test_crowd_annotations_are_left_out(coco8_copy: Path) -> None:
    _edit_coco(_set(["annotations", 0, "iscrowd"], 1))(coco8_copy)
    assert read_coco(coco8_copy / COCO_FILE).box_count == 16


IMAGE = Path("a.jpg")
RECORD_CASES = [
    ("boxes-not-4-wide", lambda: LabeledImage(IMAGE, 10, 10, np.zeros((1, 3), np.float32),
                                              np.zeros(1, np.int64), "train"),
     r"xyxy: expected float32 \(N, 4\)"),
    ("float64-boxes", lambda: LabeledImage(IMAGE, 10, 10, np.zeros((1, 4)), np.zeros(1, np.int64), "train"),
     r"xyxy: expected float32"),
    ("ids-length", lambda: LabeledImage.from_arrays(Path("a.jpg"), 10, 10, [[0, 0, 1, 1]], [0, 1], "train"),
     r"class_ids: expected int64 \(1,\)"),
    ("outside", lambda: LabeledImage.from_arrays(Path("a.jpg"), 10, 10, [[0, 0, 11, 1]], [0], "train"),
     r"a\.jpg: expected boxes with 0 <= x1 <= x2 <= 10"),
    ("bad-split", lambda: LabeledImage.from_arrays(IMAGE, 10, 10, [], [], "../x"), r"split: expected"),
    ("duplicate-names", lambda: DetectionDataset(("a", "a"), ()), r"duplicates \['a'\]"),
    ("no-names", lambda: DetectionDataset((), ()), r"at least one class name"),
    ("id-not-in-names", lambda: DetectionDataset(
        ("a",), (LabeledImage.from_arrays(Path("a.jpg"), 10, 10, [[0, 0, 1, 1]], [1], "train"),)),
     r"a\.jpg: class id 1 is not in the 1 class names"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"), [c[1:] for c in RECORD_CASES], ids=[c[0] for c in RECORD_CASES]
)
def test_records_refuse_bad_arrays(build: Callable[[], object], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        build()


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("d/images/train/a.jpg", "d/labels/train/a.txt"),
        ("images/a.png", "labels/a.txt"),
        ("images/x/images/train/a.jpg", "images/x/labels/train/a.txt"),  # the last 'images' folder
    ],
    ids=["split-folder", "flat", "nested"],
)
def test_label_path_replaces_the_last_images_folder(image: str, label: str) -> None:
    assert yolo_label_path(Path(image)) == Path(label)


def test_writers_refuse_two_images_with_one_name_in_a_split(coco8: DetectionDataset, tmp_path: Path) -> None:
    twice = DetectionDataset(coco8.class_names, (coco8.items[0], coco8.items[0]))
    with pytest.raises(DatasetError, match="split 'train' already has an image named 000000000009"):
        write_yolo(twice, tmp_path)
