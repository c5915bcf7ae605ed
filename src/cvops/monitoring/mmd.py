"""Two-sample test on embeddings: maximum mean discrepancy (MMD) with a permutation p-value.

Evidently 0.7 has an ``EmbeddingsDrift`` metric with an MMD method, but it decides drift by a
fixed threshold on the statistic (0.015), not by a test, and its kernel bandwidth step starts a
process pool (~7 s per report on 2 cores). This test is the textbook one (Gretton et al., 2012):
an RBF kernel with the median-distance bandwidth, the unbiased MMD^2 estimate, and a p-value from
random relabelings of the pooled sample, which holds its level for any sample size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class MmdResult:
    """Outcome of :func:`mmd_test`.

    Attributes:
        mmd2: Unbiased MMD^2 estimate of the two samples (can be slightly negative).
        p_value: Share of relabelings with an MMD^2 at least as large (the observed one counted).
        reference_size: Rows of the reference sample used.
        current_size: Rows of the current sample used.
    """

    mmd2: float
    p_value: float
    reference_size: int
    current_size: int


def _mmd2(kernel: npt.NDArray[np.float64], in_x: npt.NDArray[np.bool_]) -> float:
    """Unbiased MMD^2 of the rows marked ``in_x`` against the others (diagonal terms left out)."""
    a = in_x.astype(np.float64)
    b = 1.0 - a
    m, n = a.sum(), b.sum()
    ka = kernel @ a
    kb = kernel @ b
    diagonal = np.diag(kernel)
    sum_xx = float(a @ ka - diagonal @ a)
    sum_yy = float(b @ kb - diagonal @ b)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * float(a @ kb) / (m * n))


def mmd_test(
    reference: npt.NDArray[np.float32],
    current: npt.NDArray[np.float32],
    *,
    permutations: int = 500,
    max_rows: int = 500,
    seed: int = 0,
) -> MmdResult:
    """Test whether two samples of embeddings come from the same distribution.

    Args:
        reference: Reference embeddings, shape (M, D), M >= 2.
        current: Current embeddings, shape (N, D), N >= 2.
        permutations: Random relabelings for the p-value (its resolution is 1 / (permutations + 1)).
        max_rows: Each sample is randomly subsampled to at most this many rows (the kernel matrix
            is (M + N)^2).
        seed: Seed of the subsampling and the relabelings.

    Raises:
        InvalidInputError: For fewer than 2 rows on a side, mismatched widths or non-finite values.
    """
    x = np.asarray(reference, np.float64)
    y = np.asarray(current, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InvalidInputError(f"mmd_test: expected (M, D) and (N, D) arrays, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise InvalidInputError(f"mmd_test: expected >= 2 rows per sample, got {len(x)} and {len(y)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInputError("mmd_test: expected finite embeddings, got NaN or inf")
    if permutations < 1 or max_rows < 2:
        raise InvalidInputError(
            f"mmd_test: expected permutations >= 1 and max_rows >= 2, got {permutations}, {max_rows}"
        )
    rng = np.random.default_rng(seed)
    if len(x) > max_rows:
        x = x[rng.choice(len(x), max_rows, replace=False)]
    if len(y) > max_rows:
        y = y[rng.choice(len(y), max_rows, replace=False)]
    pooled = np.vstack([x, y])
    squared = np.sum(pooled**2, axis=1)
    distances2 = np.maximum(squared[:, None] + squared[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    off_diagonal = distances2[np.triu_indices(len(pooled), k=1)]
    median2 = float(np.median(off_diagonal[off_diagonal > 0])) if (off_diagonal > 0).any() else 1.0
    kernel = np.exp(-distances2 / median2)
    in_x = np.zeros(len(pooled), bool)
    in_x[: len(x)] = True
    observed = _mmd2(kernel, in_x)
    exceed = sum(_mmd2(kernel, rng.permutation(in_x)) >= observed for _ in range(permutations))
    return MmdResult(
        mmd2=observed,
        p_value=(1 + exceed) / (1 + permutations),
        reference_size=len(x),
        current_size=len(y),
    )
