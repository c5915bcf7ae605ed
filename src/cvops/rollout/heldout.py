"""Champion vs challenger on a held-out set: mAP, recall and per-class AP with bootstrap intervals.

Point numbers come from :func:`cvops.evaluation.model_eval.evaluate_model` (COCOeval). The
intervals of the differences come from a paired per-image bootstrap: each resample draws images
with replacement and scores both models on the same draw (see :mod:`cvops.rollout.matching`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvops.contracts.model_package import read_model_package
from cvops.detection.loader import load_detector
from cvops.evaluation.detection import EvaluationSettings, read_coco_ground_truth
from cvops.evaluation.model_eval import (
    EVAL_DETECTOR_SETTINGS,
    ModelEvaluation,
    evaluate_model,
    map_class_names,
    resolve_ground_truth,
)
from cvops.images import read_image
from cvops.metrics.coco import to_coco_results
from cvops.rollout.matching import ImageMatches, match_images, weighted_map_50_95, weighted_recall_50
from cvops.rollout.statistics import Interval, percentile_interval, resample_counts

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ClassChange:
    """One category's AP50-95, champion vs challenger.

    Attributes:
        class_name: The category's name.
        gt_count: Ground-truth boxes of the category in the held-out set.
        champion_ap: Champion AP50-95 (None: COCOeval gave none).
        challenger_ap: Challenger AP50-95.
        delta: Challenger minus champion (None when either is None).
    """

    class_name: str
    gt_count: int
    champion_ap: float | None
    challenger_ap: float | None
    delta: float | None


@dataclass(frozen=True, slots=True, eq=False)
class HeldoutComparison:
    """What the held-out set says about the challenger.

    Attributes:
        image_count: Images scored.
        champion: The champion's evaluation.
        challenger: The challenger's evaluation.
        map_delta: Challenger minus champion mAP50-95, with its per-image bootstrap interval.
        recall_delta: Challenger minus champion recall at IoU 0.5 (operating point), same.
        class_changes: Per-category AP changes, worst first.
    """

    image_count: int
    champion: ModelEvaluation
    challenger: ModelEvaluation
    map_delta: Interval
    recall_delta: Interval
    class_changes: tuple[ClassChange, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as JSON-ready data."""

        def model(evaluation: ModelEvaluation) -> dict[str, Any]:
            return {
                "package": evaluation.label,
                "map_50_95": evaluation.report.map_50_95,
                "map_50": evaluation.report.map_50,
                "recall_50": evaluation.report.recall_50,
                "latency_p50_ms": evaluation.latency.p50_ms,
            }

        return {
            "image_count": self.image_count,
            "champion": model(self.champion),
            "challenger": model(self.challenger),
            "map_50_95_delta": self.map_delta.as_dict(),
            "recall_50_delta": self.recall_delta.as_dict(),
            "per_class": [
                {
                    "class_name": c.class_name,
                    "gt_count": c.gt_count,
                    "champion_ap_50_95": c.champion_ap,
                    "challenger_ap_50_95": c.challenger_ap,
                    "delta": c.delta,
                }
                for c in self.class_changes
            ],
        }


def detect_rows(package_dir: Path, ground_truth_path: Path) -> list[dict[str, Any]]:
    """Run a package on every image of a COCO ground truth; return COCO result rows.

    The same detector thresholds and class mapping as :func:`evaluate_model`, so the rows
    reproduce its scores.
    """
    spec = read_model_package(package_dir)
    ground_truth = read_coco_ground_truth(ground_truth_path)
    required = {int(a["category_id"]) for a in ground_truth["annotations"] if not a.get("iscrowd", 0)}
    category_of_class, _ = map_class_names(spec.class_names, ground_truth["categories"], required)
    is_kept = np.array([c is not None for c in category_of_class], np.bool_)
    category_ids = [c if c is not None else -1 for c in category_of_class]
    detector = load_detector(package_dir, EVAL_DETECTOR_SETTINGS)
    rows: list[dict[str, Any]] = []
    for image_info in ground_truth["images"]:
        (found,) = detector.detect([read_image(ground_truth_path.parent / str(image_info["file_name"]))])
        rows += to_coco_results(int(image_info["id"]), found.select(is_kept[found.class_ids]), category_ids)
    return rows


def compare_heldout(
    champion_dir: Path,
    challenger_dir: Path,
    dataset: Path,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
) -> HeldoutComparison:
    """Score both packages on a held-out set and bootstrap their differences per image.

    Args:
        champion_dir: The champion's model package.
        challenger_dir: The challenger's model package.
        dataset: A COCO ground-truth file, or a dataset folder holding ``annotations_coco_val.json``.
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the intervals.
        seed: Seed of the resampling.
        on_progress: Called with a short message before each step.

    Raises:
        InvalidInputError: When the dataset is missing or empty, or class names do not fit.
        ModelPackageError: When a package breaks its contract.
    """
    notify = on_progress or (lambda _: None)
    settings = EvaluationSettings()
    gt_path = resolve_ground_truth(dataset)
    ground_truth = read_coco_ground_truth(gt_path)
    notify(f"held-out: scoring the champion on {gt_path}")
    champion = evaluate_model(champion_dir, gt_path, settings)
    notify("held-out: scoring the challenger")
    challenger = evaluate_model(challenger_dir, gt_path, settings)
    notify(f"held-out: per-image bootstrap ({n_resamples} resamples)")
    matches: list[ImageMatches] = [
        match_images(ground_truth, detect_rows(package, gt_path), settings.score_threshold)
        for package in (champion_dir, challenger_dir)
    ]
    image_count = len(ground_truth["images"])
    counts = resample_counts(image_count, n_resamples, np.random.default_rng(seed))
    map_replicates = weighted_map_50_95(matches[1], counts) - weighted_map_50_95(matches[0], counts)
    recall_replicates = weighted_recall_50(matches[1], counts) - weighted_recall_50(matches[0], counts)
    map_delta = percentile_interval(challenger.map_50_95 - champion.map_50_95, map_replicates, confidence)
    recall_delta = percentile_interval(
        challenger.report.recall_50 - champion.report.recall_50, recall_replicates, confidence
    )
    return HeldoutComparison(
        image_count=image_count,
        champion=champion,
        challenger=challenger,
        map_delta=map_delta,
        recall_delta=recall_delta,
        class_changes=_class_changes(champion, challenger),
    )


def _class_changes(champion: ModelEvaluation, challenger: ModelEvaluation) -> tuple[ClassChange, ...]:
    changes = []
    for before, after in zip(champion.report.per_class, challenger.report.per_class, strict=True):
        if before.gt_count == 0:
            continue
        delta = (
            None if before.ap_50_95 is None or after.ap_50_95 is None else after.ap_50_95 - before.ap_50_95
        )
        changes.append(ClassChange(before.name, before.gt_count, before.ap_50_95, after.ap_50_95, delta))
    return tuple(sorted(changes, key=lambda c: (c.delta is None, c.delta or 0.0)))
