"""Detection evaluation against the world: COCOeval on real detections, real models through the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cvops.contracts.model_package import ModelPackageSpec
from cvops.data.synthetic import SyntheticDataset
from cvops.evaluation.detection import evaluate_detections, read_coco_results
from tests.conftest import fixture_path
from tests.integration.conftest import TRAIN_IMGSZ

pytestmark = pytest.mark.integration

CVOPS = [sys.executable, "-m", "cvops"]
Package = tuple[Path, ModelPackageSpec]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CVOPS, *args], capture_output=True, text=True, timeout=600, check=False)


def _pycocotools_stats(ground_truth: Path, results: Path) -> list[float]:
    """pycocotools on its own, files in and stats out, as its README shows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(ground_truth))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(results)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


@pytest.mark.parametrize("detector", ["yolox_nano_onnx", "fastestdet_onnx"])
def test_map_on_coco8_reference_detections_is_exactly_pycocotools(detector: str, record_property) -> None:  # type: ignore[no-untyped-def]
    root = fixture_path("coco8")
    ground_truth = root / "annotations_coco_all8.json"
    results = root / "reference_detections" / f"{detector}_results.json"
    recorded = json.loads((root / "reference_detections" / "stats_computed_here.json").read_text())[detector]

    report = evaluate_detections(ground_truth, read_coco_results(results))
    expected = _pycocotools_stats(ground_truth, results)

    assert list(report.coco_stats.values) == expected  # bit for bit
    assert (report.map_50_95, report.map_50, report.map_75) == tuple(expected[:3])
    # The recorded values are the same computation, rounded to 6 decimals.
    assert report.coco_stats.values == pytest.approx(recorded["stats"], abs=5e-7)
    assert report.detection_count == recorded["n_dets"]
    assert report.gt_count == 30
    record_property(f"{detector}_coco8_map_50_95", report.map_50_95)
    record_property(f"{detector}_coco8_map_50", report.map_50)


def test_eval_det_cli_writes_the_report(tmp_path: Path) -> None:
    root = fixture_path("coco8")
    result = _run(
        "eval-det",
        "--gt", str(root / "annotations_coco_all8.json"),
        "--pred", str(root / "reference_detections" / "yolox_nano_onnx_results.json"),
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "0.5722" in result.stdout  # mAP50-95 in the table
    content = json.loads((tmp_path / "report.json").read_text())
    assert content["map_50_95"] == pytest.approx(0.572154, abs=5e-7)
    assert {p.name for p in tmp_path.iterdir()} == {
        "report.json", "report.html", "confusion_matrix.png", "pr_curves.png"
    }  # fmt: skip


def test_eval_det_cli_missing_file_is_one_line(tmp_path: Path) -> None:
    result = _run("eval-det", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "dets.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'dets.json'}: no such detections file"


def test_evaluate_cli_on_yolox_and_coco8_val(yolox_package: Path, tmp_path: Path) -> None:
    root = fixture_path("coco8")
    result = _run("evaluate", "--model", str(yolox_package), "--data", str(root), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    content = json.loads((tmp_path / "report.json").read_text())
    assert content["ground_truth"] == str(root / "annotations_coco_val.json")
    detection = content["detection"]
    assert (detection["image_count"], detection["gt_count"]) == (4, 17)
    assert detection["map_50_95"] > 0.3  # YOLOX-nano scores 0.57 on all eight (reference detections)
    assert 0.0 < detection["recall_50"] <= 1.0
    latency = content["latency"]
    assert 0.0 < latency["p50_ms"] <= latency["p99_ms"]
    assert latency["fps"] > 0.0
    assert latency["timed_images"] == 4
    # The darknet-style names of the fixture (motorbike, sofa, ...) have no boxes in val: reported, not fatal.
    assert "motorcycle" in content["model"]["unmatched_class_names"]
    page = (tmp_path / "report.html").read_text()
    for png in ("confusion_matrix.png", "pr_curves.png"):
        assert (tmp_path / png).stat().st_size > 5_000
        assert f'href="{png}"' in page
    assert "p50" in result.stdout


def test_evaluate_cli_names_the_mismatched_classes(
    yolox_package: Path, synthetic_dataset: SyntheticDataset
) -> None:
    result = _run("evaluate", "--model", str(yolox_package), "--data", str(synthetic_dataset.root))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "the ground truth has boxes of ['circle', 'square', 'triangle']" in line


def test_gate_int8_against_fp32_on_synthetic_data(
    fp32_package: Package,
    int8_package: Package,
    synthetic_dataset: SyntheticDataset,
    tmp_path: Path,
    record_property,  # type: ignore[no-untyped-def]
) -> None:
    result = _run(
        "gate",
        "--reference", str(fp32_package[0]),
        "--candidate", str(int8_package[0]),
        "--data", str(synthetic_dataset.root),
        "--max-map-drop", "0.01",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode in (0, 3), result.stderr
    content = json.loads((tmp_path / "gate.json").read_text())
    decision = content["decision"]
    (variant,) = decision["variants"]
    fp32, int8 = content["evaluations"]
    assert (fp32["model"]["precision"], int8["model"]["precision"]) == ("fp32", "int8")
    # The decision carries both models' numbers, and they are the measured ones.
    assert (
        variant["reference_map_50_95"] == fp32["detection"]["map_50_95"] == decision["reference"]["map_50_95"]
    )
    assert variant["map_50_95"] == int8["detection"]["map_50_95"]
    assert variant["reference_latency_p50_ms"] == fp32["latency"]["p50_ms"]
    assert variant["latency_p50_ms"] == int8["latency"]["p50_ms"]
    drop = fp32["detection"]["map_50_95"] - int8["detection"]["map_50_95"]
    is_faster = int8["latency"]["p50_ms"] < fp32["latency"]["p50_ms"]
    assert variant["is_accepted"] is (drop <= 0.01 + 1e-9 and is_faster)
    assert result.returncode == (0 if variant["is_accepted"] else 3)
    assert ("accepted" if variant["is_accepted"] else "rejected") in result.stdout
    assert len(variant["reasons"]) == 2
    summary = (
        f"fp32 mAP50-95 {fp32['detection']['map_50_95']:.4f} p50 {fp32['latency']['p50_ms']:.2f} ms; "
        f"int8 mAP50-95 {int8['detection']['map_50_95']:.4f} p50 {int8['latency']['p50_ms']:.2f} ms; "
        f"{'accepted' if variant['is_accepted'] else 'rejected'}"
    )
    record_property("gate_int8_vs_fp32", summary)
    print(summary)


def test_registration_behind_the_gate_stores_only_accepted_variants(
    fp32_package: Package, int8_package: Package, synthetic_dataset: SyntheticDataset, tmp_path: Path
) -> None:
    from cvops.cli.app import main
    from cvops.registry.mlflow_registry import ModelRegistry
    from cvops.training.quantize import quantize_int8

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # An INT8 model calibrated on black frames: its activation ranges are wrong for real frames,
    # so it loses accuracy whatever the trained model is (a good INT8 may even gain a little).
    black = tmp_path / "black"
    black.mkdir()
    for index in range(4):
        cv2.imwrite(str(black / f"black_{index}.png"), np.zeros((TRAIN_IMGSZ, TRAIN_IMGSZ, 3), np.uint8))
    miscalibrated = tmp_path / "int8-black"
    quantize_int8(fp32_package[0], black, miscalibrated, max_images=4)
    # A lenient bound with the good INT8 (it then passes if it is faster), then a zero bound with
    # the miscalibrated one, which must not be registered.
    cases = (("1.0", int8_package[0], None), ("0.0", miscalibrated, False))
    for version, (max_drop, variant, expect_int8) in enumerate(cases, start=1):
        code = main(
            ["registry", "register", str(fp32_package[0]), "--name", "gated",
             "--variant", f"int8={variant}", "--gate-data", str(synthetic_dataset.root),
             "--max-map-drop", max_drop, "--tracking-uri", tracking_uri]
        )  # fmt: skip
        assert code == 0
        record = ModelRegistry(tracking_uri, state_dir=tmp_path).show("gated", version)
        accepted = record.metrics["gate.int8.accepted"] == 1.0
        assert ("int8" in record.variants) == accepted, "registered exactly when the gate accepted it"
        assert "gate.int8.map_drop" in record.metrics, "a rejected variant stays on record with its numbers"
        if expect_int8 is not None:
            assert accepted is expect_int8
