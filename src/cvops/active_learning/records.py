"""The selection contract: what ``cvops select`` writes and the labeling step reads.

``selection.jsonl`` holds one :class:`SelectedFrame` per line, best first; ``summary.json``
holds one :class:`SelectionSummary`. Each frame carries the model's detections (the
:class:`~cvops.contracts.detections.ImageDetections` of ``cvops detect``), so Label Studio can
import them as pre-annotations.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from cvops.contracts.detections import ImageDetections

Strategy = Literal[
    "random",
    "least-confidence",
    "margin",
    "entropy",
    "class-balanced",
    "localization",
    "disagreement",
    "coreset",
    "combined",
]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
ScoreName = Literal[
    "least_confidence", "margin", "entropy", "class_balanced", "localization", "disagreement", "diversity"
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectedFrame(_Frozen):
    """One frame chosen for labeling.

    Attributes:
        path: The frame's file, as found in the pool.
        rank: 1 for the first frame to label.
        strategy: The strategy that chose it.
        priority: The value the strategy ranked by (higher first; for ``random``, 0).
        scores: Every score computed for the frame (see :mod:`cvops.active_learning.uncertainty`;
            ``diversity`` is the descriptor distance to the nearest labeled or chosen frame).
        reason: Why it was chosen, in words.
        predictions: The model's detections of the frame (pre-annotations).
    """

    path: str
    rank: int = Field(ge=1)
    strategy: Strategy
    priority: float
    scores: dict[ScoreName, float]
    reason: str
    predictions: ImageDetections


class SelectionSummary(_Frozen):
    """What one selection run did.

    Attributes:
        strategy: The strategy used.
        budget: Frames asked for.
        selected: Frames chosen (fewer than ``budget`` when the pool ran out).
        pool_size: Image files found in the pool.
        duplicates_removed: Pool frames dropped as near-duplicates of a better or labeled frame.
        labeled_size: Frames already labeled, given to the run.
        model: The model package's name (``none`` when selecting without a model);
            ``challenger`` likewise, when one was given.
        seed: Seed of the random choices.
    """

    strategy: Strategy
    budget: int = Field(ge=1)
    selected: int = Field(ge=0)
    pool_size: int = Field(ge=0)
    duplicates_removed: int = Field(ge=0)
    labeled_size: int = Field(ge=0)
    model: str
    challenger: str | None = None
    seed: int = Field(ge=0)
