"""Bootstrap intervals, the KS statistic and the resampled COCO mAP of the A/B gate, on known data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from cvops.errors import InvalidInputError
from cvops.metrics.coco import run_coco_eval
from cvops.rollout.matching import match_images, weighted_map_50_95, weighted_recall_50
from cvops.rollout.statistics import (
    Interval,
    bootstrap_percentile,
    bootstrap_percentile_difference,
    ks_statistic,
    resample_counts,
)


def test_interval_of_constant_data_is_a_point() -> None:
    interval = bootstrap_percentile([7.0] * 50, 99, n_resamples=200)
    assert (interval.estimate, interval.low, interval.high) == (7.0, 7.0, 7.0)


def test_median_interval_matches_the_normal_theory_width() -> None:
    sample = np.random.default_rng(1).normal(0.0, 1.0, 4000)
    interval = bootstrap_percentile(sample, 50, n_resamples=1000, confidence=0.95)
    assert interval.low < 0.0 < interval.high
    # Standard error of the median of N(0, 1): sqrt(pi / 2) / sqrt(n); the 95 % width is 2 * 1.96 of it.
    expected = 2 * 1.96 * np.sqrt(np.pi / 2) / np.sqrt(sample.size)
    assert 0.75 * expected < interval.high - interval.low < 1.25 * expected


def test_p99_interval_covers_the_true_quantile_of_a_uniform() -> None:
    sample = np.random.default_rng(2).uniform(0.0, 100.0, 5000)
    interval = bootstrap_percentile(sample, 99, n_resamples=500)
    assert interval.low <= 99.0 <= interval.high
    assert interval.high - interval.low < 1.0


def test_difference_of_shifted_samples_is_the_shift() -> None:
    control = np.random.default_rng(3).exponential(10.0, 3000)
    interval = bootstrap_percentile_difference(control + 25.0, control, 99, n_resamples=500)
    assert interval.estimate == pytest.approx(25.0)
    assert interval.low < 25.0 < interval.high


def test_same_seed_gives_the_same_interval() -> None:
    sample = np.random.default_rng(4).normal(size=100)
    assert bootstrap_percentile(sample, 99, seed=5) == bootstrap_percentile(sample, 99, seed=5)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0),
        ([1.0, 2.0, 3.0], [10.0, 11.0], 1.0),
        ([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], 1 / 3),
        ([], [], 0.0),
        ([0.5], [], 1.0),
    ],
    ids=["identical", "disjoint", "shifted-by-one", "both-empty", "one-empty"],
)
def test_ks_statistic_table(a: list[float], b: list[float], expected: float) -> None:
    assert ks_statistic(a, b) == pytest.approx(expected)


def test_ks_statistic_matches_scipy() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.beta(2, 5, 300), rng.beta(2.5, 5, 200)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)


def test_resample_counts_draw_every_row_full() -> None:
    counts = resample_counts(7, 50, np.random.default_rng(0))
    assert counts.shape == (50, 7)
    assert (counts.sum(axis=1) == 7).all()
    assert counts.min() >= 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": [], "q": 99}, "at least one value"),
        ({"values": [1.0], "q": 101}, "percentile"),
        ({"values": [1.0], "q": 99, "n_resamples": 5}, "n_resamples"),
        ({"values": [1.0], "q": 99, "confidence": 1.0}, "confidence"),
    ],
    ids=["empty", "q-out-of-range", "too-few-resamples", "confidence-1"],
)
def test_bad_settings_are_one_line_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        bootstrap_percentile(**kwargs)


def test_interval_rejects_reversed_bounds() -> None:
    with pytest.raises(InvalidInputError, match="low <= high"):
        Interval(0.0, 1.0, 0.5, 0.95)


# --- resampled COCO mAP: golden against pycocotools' COCOeval --------------------------------------


def _synthetic_coco(seed: int, n_images: int = 6) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Ground truth of 2 classes and noisy detections: some hits, some misses, some false alarms."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(n_images)]
    annotations: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for image in images:
        for _ in range(int(rng.integers(1, 5))):
            x, y = rng.uniform(0, 500), rng.uniform(0, 350)
            w, h = rng.uniform(20, 120), rng.uniform(20, 120)
            category = int(rng.integers(1, 3))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image["id"], "category_id": category,
                 "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
            if rng.uniform() < 0.8:  # a detection near the box, shifted by up to 30 %
                dx, dy = rng.uniform(-0.3, 0.3, 2) * (w, h)
                rows.append(
                    {"image_id": image["id"], "category_id": category, "bbox": [x + dx, y + dy, w, h],
                     "score": float(rng.uniform(0.05, 1.0))}
                )  # fmt: skip
        for _ in range(int(rng.integers(0, 3))):  # false alarms
            rows.append(
                {"image_id": image["id"], "category_id": int(rng.integers(1, 3)),
                 "bbox": [float(rng.uniform(0, 500)), float(rng.uniform(0, 350)), 50.0, 50.0],
                 "score": float(rng.uniform(0.0, 0.6))}
            )  # fmt: skip
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    return {"images": images, "annotations": annotations, "categories": categories}, rows


def _duplicated(
    ground_truth: dict[str, Any], rows: list[dict[str, Any]], weights: list[int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dataset with image i copied weights[i] times (new ids), as a bootstrap resample is."""
    images, annotations, new_rows = [], [], []
    for index, (image, copies) in enumerate(zip(ground_truth["images"], weights, strict=True)):
        for copy in range(copies):
            new_id = 1000 * (copy + 1) + index
            images.append({**image, "id": new_id})
            annotations += [
                {**a, "id": len(annotations) + n + 1, "image_id": new_id}
                for n, a in enumerate(a for a in ground_truth["annotations"] if a["image_id"] == image["id"])
            ]
            new_rows += [{**r, "image_id": new_id} for r in rows if r["image_id"] == image["id"]]
    return {**ground_truth, "images": images, "annotations": annotations}, new_rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_with_unit_weights_is_cocoeval(seed: int) -> None:
    ground_truth, rows = _synthetic_coco(seed)
    matches = match_images(ground_truth, rows, score_threshold=0.25)
    expected = run_coco_eval(ground_truth, rows).stats.map_50_95
    assert weighted_map_50_95(matches, np.ones(len(ground_truth["images"])))[0] == pytest.approx(
        expected, abs=1e-12
    )


@pytest.mark.parametrize("weights", [[2, 0, 1, 1, 0, 2], [0, 0, 3, 1, 1, 1], [6, 0, 0, 0, 0, 0]])
def test_map_of_a_resample_is_cocoeval_on_the_duplicated_images(weights: list[int]) -> None:
    ground_truth, rows = _synthetic_coco(4)
    matches = match_images(ground_truth, rows, score_threshold=0.25)
    resampled_gt, resampled_rows = _duplicated(ground_truth, rows, weights)
    expected = run_coco_eval(resampled_gt, resampled_rows).stats.map_50_95
    assert weighted_map_50_95(matches, [weights])[0] == pytest.approx(expected, abs=1e-9)


def test_recall_of_a_resample_counts_each_drawn_image() -> None:
    ground_truth, rows = _synthetic_coco(5)
    matches = match_images(ground_truth, rows, score_threshold=0.25)
    weights = np.array([[1, 1, 1, 1, 1, 1], [3, 0, 0, 0, 0, 3]])
    recall = weighted_recall_50(matches, weights)
    gt_per_image = matches.gt_counts.sum(axis=1)
    assert recall[0] == pytest.approx(matches.tp_50.sum() / gt_per_image.sum())
    assert recall[1] == pytest.approx(
        (matches.tp_50[0] + matches.tp_50[5]) / (gt_per_image[0] + gt_per_image[5])
    )
