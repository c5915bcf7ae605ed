"""Label Studio JSON exports -> DetectionDataset, with an export built from coco8 ground truth."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvops.data.formats import DetectionDataset, LabeledImage, read_yolo
from cvops.data.label_studio import read_label_studio
from cvops.errors import DatasetError
from tests.conftest import fixture_path

Task = dict[str, Any]


@pytest.fixture(scope="module")
def coco8() -> DetectionDataset:
    return read_yolo(fixture_path("coco8/coco8.yaml"))


def _region(item: LabeledImage, box: list[float], label: str, region_id: str) -> dict[str, Any]:
    x1, y1, x2, y2 = box
    return {
        "original_width": item.width,
        "original_height": item.height,
        "image_rotation": 0,
        "value": {
            "x": x1 / item.width * 100,
            "y": y1 / item.height * 100,
            "width": (x2 - x1) / item.width * 100,
            "height": (y2 - y1) / item.height * 100,
            "rotation": 0,
            "rectanglelabels": [label],
        },
        "id": region_id,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "manual",
    }


def _annotation(
    annotation_id: int, task_id: int, result: list[dict[str, Any]], time: str, cancelled: bool
) -> Task:
    return {
        "id": annotation_id,
        "completed_by": 1,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": f"2024-05-0{time}T09:00:00.000000Z",
        "updated_at": f"2024-05-0{time}T10:00:00.000000Z",
        "draft_created_at": None,
        "lead_time": 12.5,
        "prediction": {},
        "result_count": len(result),
        "unique_id": f"uuid-{annotation_id}",
        "import_id": None,
        "last_action": None,
        "task": task_id,
        "project": 1,
        "updated_by": 1,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def build_export(dataset: DetectionDataset) -> list[Task]:
    """A realistic 'JSON' export: per image an older draft, the latest annotation, a later skip."""
    tasks = []
    for index, item in enumerate(dataset.items):
        task_id = index + 1
        name = item.image_path.name
        if index % 2 == 0:  # imported from local storage
            url = f"/data/local-files/?d={item.image_path.parent.parent.name}/{item.split}/{name}"
        else:  # uploaded: Label Studio prefixes 8 hex digits
            url = f"/data/upload/1/{task_id:08x}-{name}"
        labels = [dataset.class_names[c] for c in item.class_ids.tolist()]
        latest = [
            _region(item, b, c, f"r{task_id}-{i}")
            for i, (b, c) in enumerate(zip(item.xyxy.tolist(), labels, strict=True))
        ]
        latest.append(
            {"id": f"c{task_id}", "type": "choices", "value": {"choices": ["day"]}, "from_name": "time"}
        )
        older = copy.deepcopy(latest[:1])
        if older and older[0]["type"] == "rectanglelabels":
            older[0]["value"]["x"] = 0.0
        skipped = [_region(item, [0, 0, 1, 1], "not-a-class", f"s{task_id}")]
        annotations = [
            _annotation(3 * task_id, task_id, older, "1", cancelled=False),
            _annotation(3 * task_id + 2, task_id, skipped, "3", cancelled=True),
            _annotation(3 * task_id + 1, task_id, latest, "2", cancelled=False),
        ]
        tasks.append(
            {
                "id": task_id,
                "annotations": annotations,
                "file_upload": name,
                "drafts": [],
                "predictions": [],
                "data": {"image": url},
                "meta": {},
                "created_at": "2024-04-30T08:00:00.000000Z",
                "updated_at": "2024-05-02T10:00:00.000000Z",
                "inner_id": task_id,
                "total_annotations": 2,
                "cancelled_annotations": 1,
                "total_predictions": 0,
                "project": 1,
                "updated_by": 1,
                "comment_authors": [],
            }
        )
    # A task skipped by everyone and a task nobody labeled yet: neither is a background image.
    only_skipped = copy.deepcopy(tasks[0])
    only_skipped["id"] = 100
    only_skipped["annotations"] = [a for a in only_skipped["annotations"] if a["was_cancelled"]]
    unlabeled = copy.deepcopy(tasks[1])
    unlabeled["id"] = 101
    unlabeled["annotations"] = []
    return [*tasks, only_skipped, unlabeled]


@pytest.fixture
def export(coco8: DetectionDataset, tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(build_export(coco8), indent=2))
    return path


def test_export_of_coco8_converts_back_to_its_ground_truth(coco8: DetectionDataset, export: Path) -> None:
    dataset = read_label_studio(export, fixture_path("coco8"), coco8.class_names, split="train")
    assert dataset.class_names == coco8.class_names
    assert [i.image_path for i in dataset.items] == [i.image_path for i in coco8.items]
    assert {i.split for i in dataset.items} == {"train"}
    for got, expected in zip(dataset.items, coco8.items, strict=True):
        assert (got.width, got.height) == (expected.width, expected.height)
        np.testing.assert_array_equal(got.class_ids, expected.class_ids)
        np.testing.assert_allclose(got.xyxy, expected.xyxy, rtol=0, atol=1e-3)


def test_without_class_names_the_used_labels_are_sorted(coco8: DetectionDataset, export: Path) -> None:
    dataset = read_label_studio(export, fixture_path("coco8"))
    used = sorted({coco8.class_names[c] for item in coco8.items for c in item.class_ids.tolist()})
    assert dataset.class_names == tuple(used)
    assert dataset.box_count == coco8.box_count
    assert (
        dataset.class_names[int(dataset.items[0].class_ids[0])]
        == coco8.class_names[int(coco8.items[0].class_ids[0])]
    )


def test_an_annotation_without_regions_is_a_background_image(export: Path) -> None:
    tasks = json.loads(export.read_text())
    tasks[0]["annotations"][2]["result"] = []
    export.write_text(json.dumps(tasks))
    assert len(read_label_studio(export, fixture_path("coco8")).items[0]) == 0


def _edit(change: Callable[[list[Task]], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        tasks = json.loads(path.read_text())
        change(tasks)
        path.write_text(json.dumps(tasks))

    return apply


def _latest_region(tasks: list[Task], task_index: int) -> dict[str, Any]:
    region: dict[str, Any] = tasks[task_index]["annotations"][2]["result"][0]
    return region


ERROR_CASES = [
    ("image-not-found", _edit(lambda t: t[2]["data"].update(image="/data/upload/1/deadbeef-gone.jpg")),
     r"task 3 \(\[2\]\): image for '/data/upload/1/deadbeef-gone\.jpg' not found under"),
    ("label-not-in-names", _edit(lambda t: _latest_region(t, 0)["value"].update(rectanglelabels=["unicorn"])),
     r"task 1 \(\[0\]\): result r1-0: label 'unicorn' is not in the class names"),
    ("two-labels", _edit(lambda t: _latest_region(t, 0)["value"].update(rectanglelabels=["person", "car"])),
     r"task 1 \(\[0\]\): result r1-0: value\.rectanglelabels: expected one label"),
    ("drawn-on-other-size", _edit(lambda t: _latest_region(t, 1).update(original_width=320)),
     r"task 2 \(\[1\]\): result r2-0: original_width: the image file is 640x426 but the region was drawn "
     r"on 320x426"),
    ("outside-image", _edit(lambda t: _latest_region(t, 0)["value"].update(x=90.0, width=20.0)),
     r"task 1 \(\[0\]\): result r1-0: label out of range"),
    ("no-image-url", _edit(lambda t: t[4]["data"].pop("image")),
     r"task 5 \(\[4\]\): data\.image: expected an image URL, got None"),
    ("bad-time", _edit(lambda t: t[0]["annotations"][0].update(updated_at="yesterday")),
     r"task 1 \(\[0\]\): annotation 3: updated_at: expected an ISO 8601 time"),
    ("not-a-list", lambda p: p.write_text('{"id": 1}'), r"export\.json: expected a JSON list of tasks"),
    ("bad-json", lambda p: p.write_text('[{"id": 1, "data": }]'),
     r"export\.json: bad JSON at line 1, column 20"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_bad_exports_name_the_task(
    coco8: DetectionDataset, export: Path, mutate: Callable[[Path], None], message: str
) -> None:
    mutate(export)
    with pytest.raises(DatasetError, match=message):
        read_label_studio(export, fixture_path("coco8"), coco8.class_names)


def _single_task_export(
    path: Path, url: str, value: dict[str, Any], width: int = 640, height: int = 480
) -> Path:
    region = {
        "type": "rectanglelabels",
        "id": "r",
        "original_width": width,
        "original_height": height,
        "value": value,
    }
    task = {
        "id": 7,
        "data": {"image": url},
        "annotations": [{"id": 1, "result": [region], "was_cancelled": False}],
    }
    path.write_text(json.dumps([task]))
    return path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/data/local-files/?d=b%2Fx.jpg", "b/x.jpg"),  # the exact path wins over the same name elsewhere
        ("/data/local-files/?d=other/b/x.jpg", "b/x.jpg"),  # moved root: the longest matching path suffix
        ("s3://bucket/raw/a/x.jpg", "a/x.jpg"),
    ],
    ids=["local-files-exact", "local-files-suffix", "cloud-url-suffix"],
)
def test_same_file_name_in_two_folders_resolves_by_path(tmp_path: Path, url: str, expected: str) -> None:
    source = fixture_path("coco8/images/train/000000000009.jpg")
    for folder in ("a", "b"):
        (tmp_path / "root" / folder).mkdir(parents=True)
        shutil.copyfile(source, tmp_path / "root" / folder / "x.jpg")
    value = {"x": 10, "y": 10, "width": 10, "height": 10, "rectanglelabels": ["cat"]}
    export = _single_task_export(tmp_path / "e.json", url, value)
    dataset = read_label_studio(export, tmp_path / "root")
    assert dataset.items[0].image_path == tmp_path / "root" / expected


def test_a_bare_name_in_two_folders_is_ambiguous(tmp_path: Path) -> None:
    source = fixture_path("coco8/images/train/000000000009.jpg")
    for folder in ("a", "b"):
        (tmp_path / "root" / folder).mkdir(parents=True)
        shutil.copyfile(source, tmp_path / "root" / folder / "x.jpg")
    value = {"x": 10, "y": 10, "width": 10, "height": 10, "rectanglelabels": ["cat"]}
    export = _single_task_export(tmp_path / "e.json", "/data/upload/3/x.jpg", value)
    with pytest.raises(
        DatasetError, match=r"task 7 \(\[0\]\): image x\.jpg is ambiguous .*\['a/x\.jpg', 'b/x\.jpg'\]"
    ):
        read_label_studio(export, tmp_path / "root")


def test_a_rotated_rectangle_becomes_its_enclosing_box(tmp_path: Path) -> None:
    # 10% of 640 x 480 at (64, 48), turned 90 degrees clockwise about its top-left corner.
    value = {"x": 10, "y": 10, "width": 10, "height": 10, "rotation": 90, "rectanglelabels": ["cat"]}
    export = _single_task_export(tmp_path / "e.json", "/data/upload/1/000000000009.jpg", value)
    dataset = read_label_studio(export, fixture_path("coco8/images"))
    np.testing.assert_allclose(dataset.items[0].xyxy, [[16, 48, 64, 112]], atol=1e-4)
