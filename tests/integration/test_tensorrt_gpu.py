"""TensorRT engine build and parity with ONNX Runtime. Needs an NVIDIA GPU with TensorRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvops.config import DetectorSettings
from cvops.contracts.model_package import ModelPackageSpec
from cvops.data.synthetic import SyntheticDataset
from cvops.detection.backends.onnx import OnnxDetector
from cvops.detection.loader import load_detector
from cvops.images import list_images, read_image
from cvops.metrics.agreement import match_detections

pytestmark = [pytest.mark.integration, pytest.mark.gpu]


def test_fp16_engine_matches_onnx_runtime(
    fp32_package: tuple[Path, ModelPackageSpec], synthetic_dataset: SyntheticDataset, tmp_path: Path
) -> None:
    from cvops.training.engine import build_engine

    spec = build_engine(fp32_package[0], tmp_path, fp16=True, max_batch=8)
    assert (spec.format, spec.precision) == ("engine", "fp16")
    images = [read_image(p) for p in list_images([synthetic_dataset.root / "images" / "val"])[:8]]
    settings = DetectorSettings(score_threshold=0.1)
    engine = load_detector(tmp_path, settings)
    # Tolerances: FP16 moves scores by up to ~1e-2 and box edges by a fraction of a pixel.
    for reference, ours in zip(
        OnnxDetector(fp32_package[0], settings).detect(images), engine.detect(images), strict=True
    ):
        matches = match_detections(reference, ours, iou_threshold=0.9)
        assert len(matches.iou) >= len(reference) - 1
        np.testing.assert_allclose(reference.scores[matches.a_index], ours.scores[matches.b_index], atol=0.02)
