"""The published YOLOX-nano through our package, decoder and runtime, checked against the world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvops.config import DetectorSettings
from cvops.detection.backends.onnx import OnnxDetector
from cvops.detection.coco import COCO80_CATEGORY_IDS
from cvops.images import read_image
from cvops.metrics.agreement import match_detections
from cvops.metrics.coco import evaluate_coco, to_coco_results
from tests.conftest import dets, fixture_path

pytestmark = pytest.mark.integration

# Where the objects of bus.jpg are, as published for an independent model (Ultralytics YOLOv8n).
BUS_REFERENCE = {
    "bus": [[17.6, 230.6, 801.5, 768.4]],
    "person": [[48.6, 398.5, 245.3, 902.7], [670.3, 380.3, 809.9, 875.7], [221.5, 405.8, 344.9, 857.5]],
}


def test_bus_image_finds_the_bus_and_three_people_where_they_are(yolox_package: Path) -> None:
    detector = OnnxDetector(yolox_package, DetectorSettings(score_threshold=0.3, iou_threshold=0.45))
    (found,) = detector.detect([read_image(fixture_path("images/bus.jpg"))])
    for name, boxes in BUS_REFERENCE.items():
        ours = found.select(np.array([n == name for n in found.class_names]))
        vocabulary = (name,)
        reference = dets(boxes, class_ids=[0] * len(boxes), vocabulary=vocabulary)
        relabeled = dets(ours.xyxy.tolist(), ours.scores.tolist(), [0] * len(ours), vocabulary)
        matches = match_detections(relabeled, reference, iou_threshold=0.6)
        assert len(matches.iou) == len(boxes), f"{name}: matched {len(matches.iou)} of {len(boxes)}"
    assert max(found.scores[np.array([n == "bus" for n in found.class_names])]) > 0.85


def test_coco8_map_with_pycocotools_reproduces_the_reference(yolox_package: Path, record_property) -> None:  # type: ignore[no-untyped-def]
    root = fixture_path("coco8")
    ground_truth = root / "annotations_coco_all8.json"
    reference = json.loads((root / "reference_detections" / "stats_computed_here.json").read_text())
    detector = OnnxDetector(yolox_package, DetectorSettings(score_threshold=0.001, iou_threshold=0.65))
    rows = []
    for image in json.loads(ground_truth.read_text())["images"]:
        (found,) = detector.detect([read_image(root / image["file_name"])])
        rows += to_coco_results(image["id"], found, COCO80_CATEGORY_IDS)
    stats = evaluate_coco(ground_truth, rows)
    record_property("yolox_nano_coco8_map_50_95", stats.map_50_95)
    record_property("yolox_nano_coco8_map_50", stats.map_50)
    expected = reference["yolox_nano_onnx"]
    assert len(rows) == expected["n_dets"]
    # The reference rounds boxes to 0.1 px before scoring; that moves AP in the 4th decimal.
    assert stats.map_50_95 == pytest.approx(expected["stats"][0], abs=2e-3)
    assert stats.map_50 == pytest.approx(expected["stats"][1], abs=2e-3)


def test_fixed_batch_graph_runs_a_batch_image_by_image(yolox_package: Path) -> None:
    detector = OnnxDetector(yolox_package)
    assert detector.fixed_batch == 1
    images = [read_image(fixture_path("images/bus.jpg")), read_image(fixture_path("images/zidane.jpg"))]
    together = detector.detect(images)
    alone = [detector.detect([image])[0] for image in images]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
