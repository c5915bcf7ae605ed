"""Pick a runtime for a model package from its ``model.json``."""

from __future__ import annotations

from pathlib import Path

from cvops.config import DetectorSettings
from cvops.contracts.model_package import read_model_package
from cvops.detection.detector import Detector


def load_detector(package_dir: Path, settings: DetectorSettings | None = None) -> Detector:
    """Open a detector package with the runtime its format needs (ONNX Runtime or TensorRT)."""
    spec = read_model_package(package_dir)
    if spec.format == "engine":
        from cvops.detection.backends.tensorrt import TensorRTDetector

        return TensorRTDetector(package_dir, settings)
    from cvops.detection.backends.onnx import OnnxDetector

    return OnnxDetector(package_dir, settings)
