"""Bootstrap confidence intervals and distribution distances used by the A/B gate.

Intervals are percentile bootstrap intervals: the statistic is recomputed on ``n_resamples``
resamples drawn with replacement, and the interval is the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` quantiles of those replicates. Draws come from a seeded generator, so
one evidence file can be reproduced exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with its bootstrap confidence interval.

    Attributes:
        estimate: The statistic on the full sample.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        confidence: Coverage of the interval, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    confidence: float

    def __post_init__(self) -> None:
        """Reject bounds in the wrong order and impossible coverages."""
        if not 0.0 < self.confidence < 1.0:
            raise InvalidInputError(f"confidence: expected a value in (0, 1), got {self.confidence}")
        if self.low > self.high:
            raise InvalidInputError(f"interval: expected low <= high, got {self.low} > {self.high}")

    def as_dict(self) -> dict[str, float]:
        """Return the interval as plain JSON numbers."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


def check_bootstrap_settings(n_resamples: int, confidence: float) -> None:
    """Raise :class:`~cvops.errors.InvalidInputError` for too few resamples or a bad coverage."""
    if n_resamples < 10:
        raise InvalidInputError(f"n_resamples: expected >= 10, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence: expected a value in (0, 1), got {confidence}")


def percentile_interval(estimate: float, replicates: FloatArray, confidence: float) -> Interval:
    """Wrap bootstrap replicates of a statistic into an :class:`Interval` (percentile method).

    Args:
        estimate: The statistic on the full sample.
        replicates: The statistic on each resample, shape (B,).
        confidence: Coverage, e.g. 0.95.
    """
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    # The estimate can sit outside a skewed interval by a rounding hair; keep low <= high only.
    return Interval(float(estimate), float(low), float(high), confidence)


def resample_counts(n_items: int, n_resamples: int, rng: np.random.Generator) -> IntArray:
    """Return how often each item is drawn in each resample, shape (B, n_items); rows sum to n_items."""
    if n_items < 1:
        raise InvalidInputError(f"n_items: expected >= 1 item to resample, got {n_items}")
    draws = rng.integers(0, n_items, size=(n_resamples, n_items))
    counts = np.zeros((n_resamples, n_items), np.int64)
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1)
    return counts


def bootstrap_percentile(
    values: npt.ArrayLike,
    q: float,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap the ``q``-th percentile (0..100) of a sample, e.g. the p99 of request latencies.

    Raises:
        InvalidInputError: For an empty sample or out-of-range settings.
    """
    sample = np.asarray(values, np.float64).ravel()
    if sample.size == 0:
        raise InvalidInputError("values: expected at least one value, got none")
    if not 0.0 <= q <= 100.0:
        raise InvalidInputError(f"q: expected a percentile in [0, 100], got {q}")
    check_bootstrap_settings(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    draws = sample[rng.integers(0, sample.size, size=(n_resamples, sample.size))]
    replicates = np.percentile(draws, q, axis=1)
    return percentile_interval(float(np.percentile(sample, q)), replicates, confidence)


def bootstrap_percentile_difference(
    treatment: npt.ArrayLike,
    control: npt.ArrayLike,
    q: float,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap the difference of the ``q``-th percentiles, treatment minus control.

    The two samples are independent (different requests), so each is resampled on its own.

    Raises:
        InvalidInputError: For an empty sample or out-of-range settings.
    """
    a = np.asarray(treatment, np.float64).ravel()
    b = np.asarray(control, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise InvalidInputError(f"samples: expected at least one value each, got {a.size} and {b.size}")
    check_bootstrap_settings(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    replicates_a = np.percentile(a[rng.integers(0, a.size, size=(n_resamples, a.size))], q, axis=1)
    replicates_b = np.percentile(b[rng.integers(0, b.size, size=(n_resamples, b.size))], q, axis=1)
    estimate = float(np.percentile(a, q) - np.percentile(b, q))
    return percentile_interval(estimate, replicates_a - replicates_b, confidence)


def ks_statistic(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs.

    Returns 0.0 when both samples are empty and 1.0 when exactly one is (nothing in common).
    """
    x = np.sort(np.asarray(a, np.float64).ravel())
    y = np.sort(np.asarray(b, np.float64).ravel())
    if x.size == 0 or y.size == 0:
        return 0.0 if x.size == y.size else 1.0
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(cdf_x - cdf_y)))
