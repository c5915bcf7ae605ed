"""Run a model package over a dataset's validation images: accuracy and measured latency."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvops.config import DetectorSettings
from cvops.contracts.model_package import read_model_package
from cvops.detection.loader import load_detector
from cvops.errors import InvalidInputError
from cvops.evaluation.detection import (
    DetectionReport,
    EvaluationSettings,
    evaluate_detections_data,
    read_coco_ground_truth,
)
from cvops.images import read_image
from cvops.metrics.coco import to_coco_results

logger = logging.getLogger(__name__)

# The file a dataset folder holds its validation ground truth in (cvops.data.synthetic, coco8).
COCO_VAL_FILE = "annotations_coco_val.json"

# COCO evaluation practice (Ultralytics val, YOLOX eval): keep nearly every box, since AP
# integrates over all scores; 300 per image, as COCOeval keeps up to 100 per image and class.
EVAL_DETECTOR_SETTINGS = DetectorSettings(score_threshold=0.001, iou_threshold=0.7, max_det=300)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Wall time of ``detector.detect([image])`` per image (preprocess, inference, decode, NMS).

    Image decoding is not included; warm-up calls are not timed.

    Attributes:
        p50_ms: Median latency in milliseconds.
        p99_ms: 99th percentile (linear interpolation) in milliseconds.
        mean_ms: Mean latency in milliseconds.
        fps: Timed images / total timed seconds.
        timed_images: Calls timed.
        warmup_runs: Untimed calls made first, on the first image.
    """

    p50_ms: float
    p99_ms: float
    mean_ms: float
    fps: float
    timed_images: int
    warmup_runs: int

    @classmethod
    def from_seconds(cls, seconds: Sequence[float], warmup_runs: int) -> LatencyStats:
        """Summarize per-image durations in seconds (at least one)."""
        if not seconds:
            raise InvalidInputError("seconds: expected at least one timed image, got none")
        ms = np.asarray(seconds, np.float64) * 1000.0
        return cls(
            p50_ms=float(np.percentile(ms, 50)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()),
            fps=len(ms) / (float(ms.sum()) / 1000.0) if ms.sum() > 0 else float("inf"),
            timed_images=len(ms),
            warmup_runs=warmup_runs,
        )


@dataclass(frozen=True, slots=True, eq=False)
class ModelEvaluation:
    """A model package scored on a dataset.

    Attributes:
        name: The package's name (``model.json``).
        precision: The package's precision (``fp32``, ``fp16``, ``int8``).
        model_format: ``onnx`` or ``engine``.
        package_dir: The package folder.
        ground_truth: The COCO ground-truth file scored against.
        report: Accuracy numbers.
        latency: Measured latency.
        unmatched_class_names: The model's classes no category of the ground truth is named
            after; their boxes were dropped.
    """

    name: str
    precision: str
    model_format: str
    package_dir: Path
    ground_truth: Path
    report: DetectionReport
    latency: LatencyStats
    unmatched_class_names: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Return ``name (precision)``, how tables and gate decisions name the package."""
        return f"{self.name} ({self.precision})"

    @property
    def map_50_95(self) -> float:
        """Return COCOeval mAP over IoU 0.50:0.95."""
        return self.report.map_50_95

    @property
    def latency_p50_ms(self) -> float:
        """Return the median latency per image in milliseconds."""
        return self.latency.p50_ms


def resolve_ground_truth(dataset: Path) -> Path:
    """Return the COCO ground truth of a dataset: the file itself, or ``<folder>/annotations_coco_val.json``.

    Image ``file_name`` entries are read relative to the ground-truth file's folder.

    Raises:
        InvalidInputError: When neither exists.
    """
    if dataset.is_file():
        return dataset
    if dataset.is_dir():
        if (dataset / COCO_VAL_FILE).is_file():
            return dataset / COCO_VAL_FILE
        raise InvalidInputError(f"{dataset}: expected {COCO_VAL_FILE} in the dataset folder, found none")
    raise InvalidInputError(f"{dataset}: no such dataset folder or COCO ground-truth file")


def map_class_names(
    class_names: Sequence[str], categories: Sequence[Mapping[str, Any]], required_ids: set[int]
) -> tuple[list[int | None], tuple[str, ...]]:
    """Map each model class to the COCO category of the same name.

    Names are compared ignoring case, spaces, ``_`` and ``-`` (``potted plant`` is
    ``pottedplant``); nothing else is guessed.

    Args:
        class_names: The model's class names, indexed by class id.
        categories: The ground truth's categories (``id``, ``name``).
        required_ids: Categories that must be mapped (those with ground-truth boxes).

    Returns:
        The category id of each class (None where no category has its name), and the names
        of those unmatched classes.

    Raises:
        InvalidInputError: When a required category has no model class of its name, or two
            model classes share a name.
    """
    by_key: dict[str, int] = {}
    for category in categories:
        by_key.setdefault(_name_key(str(category.get("name", ""))), int(category["id"]))
    keys = [_name_key(n) for n in class_names]
    duplicates = sorted({n for n, k in zip(class_names, keys, strict=True) if keys.count(k) > 1})
    if duplicates:
        raise InvalidInputError(f"class_names: expected unique names, got duplicates {duplicates}")
    mapped = [by_key.get(k) for k in keys]
    missing = sorted(
        str(c.get("name"))
        for c in categories
        if int(c["id"]) in required_ids and int(c["id"]) not in set(m for m in mapped if m is not None)
    )
    if missing:
        raise InvalidInputError(
            f"class names: the ground truth has boxes of {missing}, which the model has no class "
            f"named after; model classes: {list(class_names)[:20]}{' ...' if len(class_names) > 20 else ''}"
        )
    unmatched = tuple(n for n, m in zip(class_names, mapped, strict=True) if m is None)
    return mapped, unmatched


def evaluate_model(
    package_dir: Path,
    dataset: Path,
    settings: EvaluationSettings | None = None,
    detector_settings: DetectorSettings = EVAL_DETECTOR_SETTINGS,
    warmup_runs: int = 3,
    on_progress: ProgressCallback | None = None,
) -> ModelEvaluation:
    """Run a model package on every image of a dataset's COCO ground truth and score it.

    Images are run one at a time (batch 1, the latency a single camera sees) and in the ground
    truth's order.

    Args:
        package_dir: A model package folder (``model.json``).
        dataset: A COCO ground-truth file, or a dataset folder holding ``annotations_coco_val.json``.
        settings: Operating point of the counted metrics (recall, confusion matrix).
        detector_settings: Detector thresholds; the default keeps boxes down to score 0.001.
        warmup_runs: Untimed calls on the first image before timing (session start, allocations).
        on_progress: Called with (images done, images in all) after each image.

    Raises:
        InvalidInputError: When the dataset, its images or the class names do not fit.
        ModelPackageError: When the package breaks its contract.
    """
    if warmup_runs < 0:
        raise InvalidInputError(f"warmup_runs: expected >= 0, got {warmup_runs}")
    spec = read_model_package(package_dir)
    if spec.task != "detect":
        raise InvalidInputError(f"{package_dir}: expected a detection model, got a {spec.task} model")
    gt_path = resolve_ground_truth(dataset)
    ground_truth = read_coco_ground_truth(gt_path)
    images = ground_truth["images"]
    if not images:
        raise InvalidInputError(f"{gt_path}: expected at least one image, got none")
    required = {int(a["category_id"]) for a in ground_truth["annotations"] if not a.get("iscrowd", 0)}
    category_of_class, unmatched = map_class_names(spec.class_names, ground_truth["categories"], required)
    if unmatched:
        logger.info("%s: dropping boxes of classes missing from %s: %s", package_dir, gt_path, unmatched)
    is_kept = np.array([c is not None for c in category_of_class], np.bool_)
    category_ids = [c if c is not None else -1 for c in category_of_class]

    detector = load_detector(package_dir, detector_settings)
    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    for index, image_info in enumerate(images):
        image = read_image(gt_path.parent / str(image_info["file_name"]))
        if index == 0:
            for _ in range(warmup_runs):
                detector.detect([image])
        start = time.perf_counter()
        (found,) = detector.detect([image])
        seconds.append(time.perf_counter() - start)
        found = found.select(is_kept[found.class_ids])
        rows += to_coco_results(int(image_info["id"]), found, category_ids)
        if on_progress is not None:
            on_progress(index + 1, len(images))
    report = evaluate_detections_data(ground_truth, rows, settings, source=str(gt_path))
    return ModelEvaluation(
        name=spec.name,
        precision=spec.precision,
        model_format=spec.format,
        package_dir=package_dir,
        ground_truth=gt_path,
        report=report,
        latency=LatencyStats.from_seconds(seconds, warmup_runs),
        unmatched_class_names=unmatched,
    )


def _name_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).casefold()
