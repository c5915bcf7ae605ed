"""The records of a drift check: its settings, each feature's test, and the overall verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cvops.errors import InvalidInputError

FeatureTable = Literal["frames", "boxes", "embedding"]

DRIFT_JSON = "drift.json"
PROMETHEUS_FILE = "drift.prom"
CANDIDATES_TXT = "candidates.txt"
CANDIDATES_JSONL = "candidates.jsonl"
CANDIDATES_DIR = "candidates"


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """The drift test of one feature.

    Attributes:
        feature: Column (or embedding) name.
        table: Which table it comes from: ``frames``, ``boxes`` or ``embedding``.
        method: The test: ``ks`` or ``chi2_contingency`` (Evidently method names), Evidently's
            default for large tables (``Wasserstein distance (normed)``), or ``mmd``.
        score: The test's value: a p-value, or a distance for distance methods.
        threshold: The value at which the feature counts as drifted.
        is_drifted: Whether the feature drifted.
        is_p_value: Whether ``score`` is a p-value (drift below the threshold) rather than a
            distance (drift at or above it).
    """

    feature: str
    table: FeatureTable
    method: str
    score: float
    threshold: float
    is_drifted: bool
    is_p_value: bool = True


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """How a drift check decides; the defaults live here.

    Attributes:
        drift_share_threshold: The window drifted when at least this share of the tested
            features drifted, and at least ``min_drifted_features`` of them.
        min_drifted_features: Each feature is tested at its own 5% level, so one drifted feature
            alone is a common false alarm (1 of 10 independent tests fires 40% of the time on
            same-distribution data, 2 of 10 fire 9%, 2 of 4 fire 1.4%); a real change (a darker
            scene, a blurred lens) moves a statistic and the embedding together.
        strong_p_value: The window also drifted when any single p-value test falls below this
            (overwhelming evidence in one feature: a brightness shift of +10 gray levels over 60
            frames gives p ~ 1e-10); ~1% false alarms over 10 same-distribution tests.
        embedding_p_value: The image embedding drifted when its MMD permutation p-value is below.
        mmd_permutations: Relabelings of the MMD test.
        max_candidates: At most this many current frames become active-learning candidates
            (the most novel first); 0 writes none.
        batch_size: Frames per detector call.
        seed: Seed of the MMD test.
    """

    drift_share_threshold: float = 0.2
    min_drifted_features: int = 2
    strong_p_value: float = 0.001
    embedding_p_value: float = 0.05
    mmd_permutations: int = 500
    max_candidates: int = 1000
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject out-of-range values with what was expected."""
        if not 0.0 < self.drift_share_threshold <= 1.0:
            raise InvalidInputError(
                f"drift_share_threshold: expected (0, 1], got {self.drift_share_threshold}"
            )
        if not 0.0 <= self.strong_p_value < 1.0:
            raise InvalidInputError(f"strong_p_value: expected [0, 1), got {self.strong_p_value}")
        if not 0.0 < self.embedding_p_value < 1.0:
            raise InvalidInputError(f"embedding_p_value: expected (0, 1), got {self.embedding_p_value}")
        if self.min_drifted_features < 1:
            raise InvalidInputError(f"min_drifted_features: expected >= 1, got {self.min_drifted_features}")
        if self.mmd_permutations < 1 or self.batch_size < 1 or self.max_candidates < 0:
            raise InvalidInputError(
                "mmd_permutations and batch_size: expected >= 1, max_candidates >= 0, got "
                f"{self.mmd_permutations}, {self.batch_size}, {self.max_candidates}"
            )


def drift_verdict(features: Sequence[FeatureDrift], settings: DriftSettings) -> tuple[float, bool]:
    """Return the drift share of the tested features and whether the window drifted.

    Drifted: the share reaches ``drift_share_threshold`` with at least ``min_drifted_features``
    drifted features, or any p-value test is below ``strong_p_value``.

    Raises:
        InvalidInputError: For no features.
    """
    if not features:
        raise InvalidInputError("drift_verdict: expected at least one tested feature, got none")
    drifted_count = sum(f.is_drifted for f in features)
    share = drifted_count / len(features)
    is_drifted = share >= settings.drift_share_threshold and drifted_count >= settings.min_drifted_features
    is_strong = any(f.is_p_value and f.score < settings.strong_p_value for f in features)
    return share, is_drifted or is_strong


@dataclass(frozen=True, slots=True)
class DriftResult:
    """The outcome of one drift check and where its files are.

    Attributes:
        reference: Label of the reference window (the Prometheus label value).
        current: Label of the current window.
        drift_share: Drifted features / tested features, 0..1.
        is_drifted: The verdict: ``drift_share`` and the drifted count reached the settings'
            thresholds, or one p-value fell below ``strong_p_value``.
        features: Every feature's test.
        reference_frames: Frames in the reference window.
        current_frames: Frames in the current window.
        reference_boxes: Detected boxes in the reference window (None: no detector ran).
        current_boxes: Detected boxes in the current window (None: no detector ran).
        skipped: Tests that could not run, each with why (e.g. no boxes on one side).
        out_dir: The folder holding the files below.
        html_paths: Evidently's self-contained HTML reports (frames, then boxes).
        json_path: ``drift.json``: this record as JSON (see :meth:`to_dict`).
        prometheus_path: ``drift.prom``: the gauges in Prometheus text format.
        candidates_path: ``candidates.txt`` when frames became candidates, else None.
        model: The model the boxes came from (package folder or ``models:/`` URI), if any.
        recorded_on: The registry version the drift was recorded on (``models:/NAME/VERSION``).
    """

    reference: str
    current: str
    drift_share: float
    is_drifted: bool
    features: tuple[FeatureDrift, ...]
    reference_frames: int
    current_frames: int
    reference_boxes: int | None
    current_boxes: int | None
    skipped: tuple[str, ...]
    out_dir: Path
    html_paths: tuple[Path, ...] = ()
    json_path: Path | None = None
    prometheus_path: Path | None = None
    candidates_path: Path | None = None
    model: str | None = None
    recorded_on: str | None = None

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Return the names of the drifted features."""
        return tuple(f.feature for f in self.features if f.is_drifted)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form written to ``drift.json``."""
        return {
            "reference": self.reference,
            "current": self.current,
            "drift_share": self.drift_share,
            "is_drifted": self.is_drifted,
            "drifted_features": list(self.drifted_features),
            "features": [
                {
                    "feature": f.feature,
                    "table": f.table,
                    "method": f.method,
                    "score": f.score,
                    "threshold": f.threshold,
                    "is_drifted": f.is_drifted,
                    "is_p_value": f.is_p_value,
                }
                for f in self.features
            ],
            "reference_frames": self.reference_frames,
            "current_frames": self.current_frames,
            "reference_boxes": self.reference_boxes,
            "current_boxes": self.current_boxes,
            "skipped": list(self.skipped),
            "html_paths": [str(p) for p in self.html_paths],
            "prometheus_path": str(self.prometheus_path) if self.prometheus_path else None,
            "candidates_path": str(self.candidates_path) if self.candidates_path else None,
            "model": self.model,
            "recorded_on": self.recorded_on,
        }
