"""The dependency rule of STYLE.md: cvops' core never pulls in heavy or adapter libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE_MODULES = [
    "cvops",
    "cvops.config",
    "cvops.errors",
    "cvops.images",
    "cvops.annotate",
    "cvops.offline",
    "cvops.contracts.model_package",
    "cvops.contracts.detections",
    "cvops.detection.types",
    "cvops.detection.ops",
    "cvops.detection.preprocess",
    "cvops.detection.decoders",
    "cvops.detection.loader",
    "cvops.detection.two_stage",
    "cvops.detection.packaging",
    "cvops.detection.backends.onnx",
    "cvops.detection.backends.tensorrt",
    "cvops.detection.backends.ultralytics",
    "cvops.metrics.coco",
    "cvops.data.synthetic",
    "cvops.data.augment",
    "cvops.video.sinks",
    "cvops.training.export",
    "cvops.training.quantize",
    "cvops.training.engine",
    "cvops.contracts.wire",
    "cvops.tracking.iou_tracker",
    "cvops.evaluation.release",
    "cvops.training.ddp",
    "cvops.training.ddp_worker",
    "cvops.cli.train",
    "cvops.evaluation.detection",
    "cvops.evaluation.model_eval",
    "cvops.evaluation.gate",
    "cvops.evaluation.report",
    "cvops.cli.evaluate",
    "cvops.data.formats",
    "cvops.data.versions",
    "cvops.data.label_studio",
    "cvops.data.fetch",
    "cvops.cli.dataset",
    "cvops.tracking.reid",
    "cvops.tracking.gallery",
    "cvops.tracking.bytetrack",
    "cvops.tracking.image_tracker",
    "cvops.tracking.forecast",
    "cvops.tracking.forecast_eval",
    "cvops.tracking.motion_compensation",
    "cvops.tracking.mot_files",
    "cvops.tracking.sequence",
    "cvops.metrics.tracking",
    "cvops.serving.streams",
    "cvops.serving.service",
    "cvops.serving.auth",
    "cvops.serving.limits",
    "cvops.serving.batching",
    "cvops.serving.breaker",
    "cvops.serving.routing",
    "cvops.serving.gateway",
    "cvops.serving.metrics",
    "cvops.serving.gpu",
    "cvops.serving.pool",
    "cvops.processes",
    "cvops.video.sources",
    "cvops.video.queues",
    "cvops.video.capture",
    "cvops.video.remote",
    "cvops.cli.app",
    "cvops.cli.detect",
    "cvops.cli.export",
    "cvops.cli.serve",
    "cvops.registry",
    "cvops.registry.events",
    "cvops.registry.records",
    "cvops.registry.retry",
    "cvops.registry.mlflow_registry",
    "cvops.registry.model_card",
    "cvops.cli.registry",
]
FORBIDDEN = ["torch", "ultralytics", "tensorrt", "kfp", "kserve", "fastapi", "feast", "mlflow"]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_importing_module_loads_no_heavy_library(module: str) -> None:
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [], f"{module} imports {result.stdout.strip()} at module level"
