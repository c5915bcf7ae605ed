"""Turn per-frame scores into an ordered pick list, one rule per strategy, with reasons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvops.active_learning.diversity import greedy_pick, typicality
from cvops.active_learning.records import ScoreName, Strategy
from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]

# Single-score strategies and the score each ranks by (higher first).
SCORE_OF_STRATEGY: dict[str, ScoreName] = {
    "least-confidence": "least_confidence",
    "margin": "margin",
    "entropy": "entropy",
    "class-balanced": "class_balanced",
    "localization": "localization",
    "disagreement": "disagreement",
}
# What ``combined`` averages (as percentile ranks), where computed (see ``rank_frames``).
COMBINED_SCORES: tuple[ScoreName, ...] = ("class_balanced", "localization", "disagreement")
# ``combined`` spreads its picks over this many times the budget of the most uncertain frames.
SHORTLIST_FACTOR = 4


@dataclass(frozen=True, slots=True)
class FrameScores:
    """Everything measured on the pool, one row per frame.

    Attributes:
        values: Score name -> shape (N,) values (only the scores this run computed).
        descriptors: Frame descriptors, shape (N, D), float32.
        dhashes: dHash of each frame, shape (N,), uint64.
        phashes: pHash of each frame, shape (N,), uint64.
    """

    values: dict[str, FloatArray]
    descriptors: npt.NDArray[np.float32]
    dhashes: npt.NDArray[np.uint64]
    phashes: npt.NDArray[np.uint64]

    def __post_init__(self) -> None:
        """Check every column has one value per frame."""
        n = len(self.descriptors)
        for name, column in self.values.items():
            if column.shape != (n,):
                raise InvalidInputError(f"score {name!r}: expected shape ({n},), got {column.shape}")
        if self.dhashes.shape != (n,) or self.phashes.shape != (n,):
            raise InvalidInputError(f"hashes: expected shape ({n},)")

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.descriptors)

    def frame_scores(self, index: int, distance: float | None) -> dict[ScoreName, float]:
        """Return every score of one frame, plus its diversity distance when one was measured."""
        row: dict[ScoreName, float] = {}
        for name in SCORE_NAMES:
            if name in self.values:
                row[name] = round(float(self.values[name][index]), 6)
        if distance is not None and np.isfinite(distance):
            row["diversity"] = round(distance, 6)
        return row


SCORE_NAMES: tuple[ScoreName, ...] = (
    "least_confidence",
    "margin",
    "entropy",
    "class_balanced",
    "localization",
    "disagreement",
)


@dataclass(frozen=True, slots=True)
class Pick:
    """One chosen frame: its pool index, the value it was ranked by, its distance, why."""

    index: int
    priority: float
    distance: float | None
    reason: str


def percentile_ranks(values: FloatArray) -> FloatArray:
    """Return each value's mid-rank percentile in 0..1 (ties share one value; all equal -> 0.5)."""
    n = len(values)
    if n == 0:
        return np.zeros(0)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    at_or_below = np.searchsorted(ordered, values, side="right")
    return (below + at_or_below).astype(np.float64) / (2.0 * n)


def class_balanced(doubt: FloatArray) -> FloatArray:
    """Return each frame's highest per-class percentile rank of its doubt, in 0..1, shape (N,).

    ``doubt`` is (N, C), one :func:`~cvops.active_learning.uncertainty.class_doubt` row per frame.
    Each class column is ranked over the pool on its own, so the frames a rare class is most in
    question in rank as high as those of a common class, and the top of the order holds about
    as many frames for each class. A frame that doubts nothing about a class ranks 0 for it.
    mAP averages classes equally; this is the uncertainty ranking that does too.
    """
    if doubt.ndim != 2 or doubt.shape[1] == 0:
        raise InvalidInputError(f"doubt: expected shape (N, C) with C >= 1, got {doubt.shape}")
    ranks = np.stack([np.where(column > 0.0, percentile_ranks(column), 0.0) for column in doubt.T], axis=1)
    best: FloatArray = ranks.max(axis=1)
    return best


def combined_uncertainty(scores: FrameScores) -> tuple[FloatArray, tuple[ScoreName, ...]]:
    """Return the mean percentile rank of the combined scores computed here, and their names."""
    names = tuple(name for name in COMBINED_SCORES if name in scores.values)
    if not names:
        raise InvalidInputError(f"combined: expected at least one of {COMBINED_SCORES}, got none")
    stacked = np.stack([percentile_ranks(scores.values[name]) for name in names])
    return stacked.mean(axis=0), names


def priority_order(scores: FrameScores, strategy: Strategy, seed: int) -> npt.NDArray[np.int64]:
    """Return frame indices best first under ``strategy`` (decides which near-duplicate stays)."""
    n = len(scores)
    if strategy == "random":
        return np.random.default_rng(seed).permutation(n).astype(np.int64)
    if strategy == "coreset":
        return np.arange(n, dtype=np.int64)
    key = (
        combined_uncertainty(scores)[0]
        if strategy == "combined"
        else scores.values[_score_name(scores, strategy)]
    )
    return np.argsort(-key, kind="stable").astype(np.int64)


def rank_frames(
    scores: FrameScores,
    strategy: Strategy,
    budget: int,
    labeled_descriptors: npt.NDArray[np.float32],
    seed: int,
    candidates: npt.NDArray[np.bool_] | None = None,
) -> list[Pick]:
    """Pick up to ``budget`` frames among ``candidates`` (all when None), best first.

    - ``random``: a seeded uniform draw.
    - single scores: highest score first.
    - ``coreset``: k-center greedy over frame descriptors, labeled frames counting as chosen.
    - ``combined``: the mean percentile rank of class-balanced doubt (:func:`class_balanced`),
      localization instability and (with a challenger) disagreement. Class-balanced rather than
      plain entropy: a class the detector barely knows yet (new at the site, or rare) has tiny
      scores everywhere, so entropy ranks its frames below average, and mAP is lost on exactly
      that class (bench-al, seed 0's first model: of the pool's 128 top-entropy frames 15 hold
      the new class, of the 128 top class-balanced ones 40; 184 of its 1208 frames do).
      The ``SHORTLIST_FACTOR x budget`` most uncertain frames are shortlisted, then k-center
      greedy picks among them, starting from the most uncertain when nothing is labeled
      (Zhdanov, "Diverse mini-batch Active Learning", 2019, does the same with k-means).
      Uncertain frames come in runs (consecutive frames of one busy scene), so ranking by
      uncertainty alone would spend the budget on copies of one scene. Each distance is
      weighted by the frame's typicality in the whole pool: plain k-center reaches for one-off
      frames first (photos from elsewhere, glitches), the frames least worth a label.
    """
    if budget < 1:
        raise InvalidInputError(f"budget: expected >= 1 frames, got {budget}")
    pool = np.flatnonzero(np.ones(len(scores), bool) if candidates is None else candidates)
    if strategy == "random":
        draw = np.random.default_rng(seed).permutation(pool)[:budget]
        return [Pick(int(i), 0.0, None, f"random draw (seed {seed})") for i in draw]
    if strategy == "coreset":
        picked, distances = greedy_pick(scores.descriptors[pool], budget, labeled_descriptors, seed=seed)
        return [
            Pick(
                int(pool[position]),
                distance if np.isfinite(distance) else 0.0,
                distance,
                f"farthest from the labeled and already chosen frames; {_distance_text(distance)}",
            )
            for position, distance in zip(picked, distances, strict=True)
        ]
    if strategy == "combined":
        combined, names = combined_uncertainty(scores)
        shortlist = pool[np.argsort(-combined[pool], kind="stable")][: SHORTLIST_FACTOR * budget]
        typical = typicality(scores.descriptors)
        picked, distances = greedy_pick(
            scores.descriptors[shortlist], budget, labeled_descriptors, start=0, weights=typical[shortlist]
        )
        picks = []
        for position, distance in zip(picked, distances, strict=True):
            index = int(shortlist[position])
            parts = ", ".join(f"{_label(n)} {scores.values[n][index]:.3g}" for n in names)
            reason = (
                f"combined uncertainty {float(combined[index]):.2f} (mean percentile of {parts}), "
                f"among the {len(shortlist)} most uncertain; typicality {typical[index]:.2f}; "
                f"{_distance_text(distance)}"
            )
            picks.append(Pick(index, float(combined[index]), distance, reason))
        return picks
    name = _score_name(scores, strategy)
    values = scores.values[name]
    ordered = pool[np.argsort(-values[pool], kind="stable")][:budget]
    ranks = percentile_ranks(values)
    return [
        Pick(
            int(i),
            float(values[i]),
            None,
            f"{_label(name)} {values[i]:.3g}, in the top {100.0 * (1.0 - ranks[i]) + 0.5:.0f}% of the pool",
        )
        for i in ordered
    ]


def _score_name(scores: FrameScores, strategy: str) -> ScoreName:
    name = SCORE_OF_STRATEGY.get(strategy)
    if name is None:
        raise InvalidInputError(f"strategy: expected one of {', '.join(SCORE_OF_STRATEGY)}, got {strategy!r}")
    if name not in scores.values:
        raise InvalidInputError(f"strategy {strategy!r}: the score {name!r} was not computed")
    return name


def _label(name: str) -> str:
    return name.replace("_", " ")


def _distance_text(distance: float) -> str:
    if not np.isfinite(distance):
        return "first pick, nothing labeled yet"
    return f"descriptor distance {distance:.2f} to the nearest labeled or chosen frame"
