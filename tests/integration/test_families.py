"""RT-DETR (NMS-free) and classifier exports, and detect-then-classify composition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvops.config import DetectorSettings
from cvops.contracts.model_package import ModelPackageSpec
from cvops.detection.backends.onnx import OnnxClassifier, OnnxDetector
from cvops.detection.two_stage import DetectThenClassify
from cvops.detection.types import Detections
from cvops.images import read_image
from cvops.metrics.agreement import match_detections
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

RTDETR_IMGSZ = 320
CLS_IMGSZ = 64


def _random_package(
    tmp_path_factory: pytest.TempPathFactory, config: str, imgsz: int
) -> tuple[Path, ModelPackageSpec]:
    """Build ``config`` with random weights (seed 0), save it as a checkpoint, export it with our code."""
    import torch

    from cvops.training.export import export_onnx, load_ultralytics

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp(Path(config).stem)
    checkpoint = out / f"{Path(config).stem}.pt"
    load_ultralytics(config).save(checkpoint)
    return out / "package", export_onnx(str(checkpoint), out / "package", imgsz)


@pytest.fixture(scope="module")
def rtdetr_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelPackageSpec]:
    return _random_package(tmp_path_factory, "rtdetr-l.yaml", RTDETR_IMGSZ)


@pytest.fixture(scope="module")
def classifier_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelPackageSpec]:
    return _random_package(tmp_path_factory, "yolov8n-cls.yaml", CLS_IMGSZ)


def test_rtdetr_export_is_decoded_without_nms_like_ultralytics(
    rtdetr_package: tuple[Path, ModelPackageSpec],
) -> None:
    from ultralytics import RTDETR

    package_dir, spec = rtdetr_package
    assert (spec.family, spec.preprocessing.resize) == ("rtdetr", "stretch")
    image = read_image(fixture_path("images/bus.jpg"))
    settings = DetectorSettings(score_threshold=0.01)
    (ours,) = OnnxDetector(package_dir, settings).detect([image])
    (result,) = RTDETR(spec.source).predict(image, imgsz=RTDETR_IMGSZ, conf=0.01, verbose=False)
    assert len(ours) > 10
    assert abs(len(ours) - len(result.boxes)) <= 3
    theirs = Detections.from_arrays(
        result.boxes.xyxy.numpy(), result.boxes.conf.numpy(), result.boxes.cls.numpy(), spec.class_names
    )
    matches = match_detections(ours, theirs, iou_threshold=0.9)
    assert len(matches.iou) >= 0.9 * len(theirs)
    np.testing.assert_allclose(ours.scores[matches.a_index], theirs.scores[matches.b_index], atol=1e-3)


def test_classifier_export_matches_pytorch_and_relabels_detections(
    classifier_package: tuple[Path, ModelPackageSpec], yolox_package: Path
) -> None:
    package_dir, spec = classifier_package
    assert (spec.family, spec.task, spec.preprocessing.resize) == ("yolo-cls", "classify", "center_crop")
    classifier = OnnxClassifier(package_dir)
    import torch
    from ultralytics import YOLO

    batch = torch.rand(2, 3, CLS_IMGSZ, CLS_IMGSZ, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = YOLO(spec.source).model.float().eval()(batch)
    expected = expected[0] if isinstance(expected, tuple) else expected
    np.testing.assert_allclose(classifier.run(batch.numpy()), expected.numpy(), atol=1e-4)
    image = read_image(fixture_path("images/bus.jpg"))
    probabilities = classifier.classify([image, image[:200, :300]])
    assert probabilities.shape == (2, len(spec.class_names))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)

    detector = OnnxDetector(yolox_package, DetectorSettings(score_threshold=0.3))
    composed = DetectThenClassify(detector, classifier, classify_names=frozenset({"person"}))
    (plain,) = detector.detect([image])
    (relabeled,) = composed.detect([image])
    is_person = np.array([n == "person" for n in plain.class_names])
    assert is_person.sum() >= 3
    offset = len(detector.class_names)
    assert (relabeled.class_ids[is_person] >= offset).all()
    assert all(relabeled.class_names[i] in spec.class_names for i in np.flatnonzero(is_person))
    np.testing.assert_array_equal(relabeled.class_ids[~is_person], plain.class_ids[~is_person])
    assert (relabeled.scores <= plain.scores + 1e-6).all()
    np.testing.assert_array_equal(relabeled.xyxy, plain.xyxy)
