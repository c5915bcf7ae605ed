"""Model-evaluation helpers (class mapping, dataset, latency) and the written report files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cvops.errors import InvalidInputError
from cvops.evaluation.detection import evaluate_detections_data
from cvops.evaluation.model_eval import LatencyStats, map_class_names, resolve_ground_truth
from cvops.evaluation.report import write_report
from tests.unit.test_evaluation_detection import BOX, OTHER, coco_gt, det

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 5, "name": "pottedplant"}, {"id": 7, "name": "motorbike"}]


@pytest.mark.parametrize(
    ("class_names", "required", "mapped", "unmatched"),
    [
        (("person", "pottedplant", "motorbike"), {1, 5, 7}, [1, 5, 7], ()),
        (("motorbike", "person"), {1}, [7, 1], ()),
        (("Person", "potted plant", "Potted_Plant2"), {1, 5}, [1, 5, None], ("Potted_Plant2",)),
        (("person", "potted-plant", "motorcycle", "tv"), {1, 5}, [1, 5, None, None], ("motorcycle", "tv")),
    ],
    ids=["same-names", "other-order", "case-and-space-insensitive", "extra-model-classes"],
)
def test_class_names_map_to_categories_by_name(
    class_names: tuple[str, ...], required: set[int], mapped: list[int | None], unmatched: tuple[str, ...]
) -> None:
    assert map_class_names(class_names, CATEGORIES, required) == (mapped, unmatched)


def test_a_category_with_boxes_but_no_model_class_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match=r"the ground truth has boxes of \['motorbike'\]") as error:
        map_class_names(("person", "motorcycle"), CATEGORIES, {1, 7})
    assert "'motorcycle'" in str(error.value)  # the model's names, to spot the mismatch


def test_duplicate_model_class_names_are_an_error() -> None:
    with pytest.raises(InvalidInputError, match="expected unique names"):
        map_class_names(("person", "Person"), CATEGORIES, {1})


def test_dataset_is_a_coco_file_or_a_folder_holding_the_val_file(tmp_path: Path) -> None:
    gt = tmp_path / "annotations_coco_val.json"
    gt.write_text("{}")
    assert resolve_ground_truth(gt) == gt
    assert resolve_ground_truth(tmp_path) == gt
    with pytest.raises(InvalidInputError, match=r"expected annotations_coco_val\.json in the dataset folder"):
        resolve_ground_truth(tmp_path.parent)
    with pytest.raises(InvalidInputError, match="no such dataset folder or COCO ground-truth file"):
        resolve_ground_truth(tmp_path / "missing")


def test_latency_percentiles_and_fps() -> None:
    stats = LatencyStats.from_seconds([0.001 * v for v in range(1, 101)], warmup_runs=2)
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.fps == pytest.approx(100 / 5.05)
    assert (stats.timed_images, stats.warmup_runs) == (100, 2)


def test_report_writes_json_pngs_and_an_offline_html_page(tmp_path: Path) -> None:
    gt = coco_gt([(1, 1, BOX), (1, 2, OTHER)])
    report = evaluate_detections_data(gt, [det(1, 1, BOX), det(1, 1, OTHER, 0.5)])
    files = write_report(tmp_path / "out", report, title="<tiny>")
    content = json.loads(files.json.read_text())
    assert content["map_50_95"] == report.map_50_95
    assert content["confusion_matrix"]["counts"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert [c["name"] for c in content["pr_curves"]] == ["cat", "dog"]
    assert content["per_class"][1] == {
        "category_id": 2, "name": "dog", "gt_count": 1, "pred_count": 0,
        "precision": None, "recall": 0.0, "ap_50_95": 0.0, "ap_50": 0.0,
    }  # fmt: skip
    for png in (files.confusion_png, files.pr_curves_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files.html.read_text()
    assert 'href="confusion_matrix.png"' in page
    assert 'href="pr_curves.png"' in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "&lt;tiny&gt;" in page
    # Nothing is fetched: no remote URL, no script.
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script" not in page
