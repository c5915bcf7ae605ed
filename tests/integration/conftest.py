"""Session-wide real models: the published YOLOX-nano, and a YOLOv8n trained here on synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvops.contracts.model_package import ModelPackageSpec
from cvops.data.synthetic import SyntheticDataset, generate_scenes
from cvops.detection.coco import COCO80_NAMES
from cvops.detection.packaging import package_onnx
from tests.conftest import fixture_path

TRAIN_IMGSZ = 160


@pytest.fixture(scope="session")
def yolox_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pretrained YOLOX-nano of the fixtures, wrapped as a package."""
    onnx_file = fixture_path("models/yolox_nano/yolox_nano.onnx")
    out = tmp_path_factory.mktemp("yolox_nano")
    package_onnx(onnx_file, out, "yolox", COCO80_NAMES)
    return out


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate_scenes(tmp_path_factory.mktemp("synthetic"), 160, 24, TRAIN_IMGSZ, seed=0)


@pytest.fixture(scope="session")
def trained_checkpoint(synthetic_dataset: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8n built from yolov8n.yaml (no weights) and trained ~1 minute, so it detects things."""
    import torch

    from cvops.training.ultralytics_train import train_ultralytics

    torch.set_num_threads(os.cpu_count() or 1)
    return train_ultralytics(
        synthetic_dataset.data_yaml,
        "yolov8n.yaml",
        tmp_path_factory.mktemp("train"),
        epochs=15,
        imgsz=TRAIN_IMGSZ,
        batch=8,
    )


@pytest.fixture(scope="session")
def fp32_package(
    trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ModelPackageSpec]:
    from cvops.training.export import export_onnx

    out = tmp_path_factory.mktemp("fp32")
    return out, export_onnx(str(trained_checkpoint), out, TRAIN_IMGSZ)


@pytest.fixture(scope="session")
def int8_package(
    fp32_package: tuple[Path, ModelPackageSpec],
    synthetic_dataset: SyntheticDataset,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, ModelPackageSpec]:
    from cvops.training.quantize import quantize_int8

    out = tmp_path_factory.mktemp("int8")
    calibration = synthetic_dataset.root / "images" / "train"
    return out, quantize_int8(fp32_package[0], calibration, out, max_images=32)
