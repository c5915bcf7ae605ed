"""The export accuracy gate: which exported variants (INT8, FP16, engines) may replace FP32.

A variant is accepted when both hold:

- its mAP50-95 is at most ``max_map_drop`` below the reference's (inclusive; 0.01 = one point),
- and, with ``require_faster``, its median latency per image is strictly below the reference's
  (a variant that is not faster has no reason to exist; its accuracy loss buys nothing).

Every candidate gets a decision with its numbers and the reasons; rejected ones are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cvops.errors import InvalidInputError

DEFAULT_MAX_MAP_DROP = 0.01

# Float slack for the inclusive bound: 0.50 - 0.49 is 0.010000000000000009 in binary.
_MAP_EPSILON = 1e-9


class GateSubject(Protocol):
    """What the gate reads of an evaluated variant (:class:`~cvops.evaluation.model_eval.ModelEvaluation`)."""

    @property
    def label(self) -> str:
        """Return how the variant is named in decisions, e.g. ``best (int8)``."""
        ...

    @property
    def map_50_95(self) -> float:
        """Return COCO mAP50-95 in 0..1."""
        ...

    @property
    def latency_p50_ms(self) -> float:
        """Return the median latency per image in milliseconds."""
        ...


@dataclass(frozen=True, slots=True)
class VariantDecision:
    """The gate's verdict on one candidate, with the numbers it rests on.

    Attributes:
        label: The candidate's name and precision.
        is_accepted: Whether the candidate passed every check.
        reasons: One sentence per check, passed or failed, with its numbers.
        map_50_95: The candidate's mAP50-95.
        reference_map_50_95: The reference's mAP50-95.
        map_drop: ``reference_map_50_95 - map_50_95`` (negative when the candidate is better).
        latency_p50_ms: The candidate's median latency per image.
        reference_latency_p50_ms: The reference's median latency per image.
        speedup: ``reference_latency_p50_ms / latency_p50_ms`` (above 1: faster).
    """

    label: str
    is_accepted: bool
    reasons: tuple[str, ...]
    map_50_95: float
    reference_map_50_95: float
    map_drop: float
    latency_p50_ms: float
    reference_latency_p50_ms: float
    speedup: float


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdicts on all candidates, in the order given.

    Attributes:
        reference_label: The reference's name and precision.
        reference_map_50_95: The reference's mAP50-95.
        reference_latency_p50_ms: The reference's median latency per image.
        max_map_drop: The accuracy bound applied.
        require_faster: Whether candidates had to be faster.
        variants: One decision per candidate, accepted or not.
    """

    reference_label: str
    reference_map_50_95: float
    reference_latency_p50_ms: float
    max_map_drop: float
    require_faster: bool
    variants: tuple[VariantDecision, ...]

    @property
    def accepted(self) -> tuple[VariantDecision, ...]:
        """Return the accepted candidates."""
        return tuple(v for v in self.variants if v.is_accepted)

    @property
    def rejected(self) -> tuple[VariantDecision, ...]:
        """Return the rejected candidates."""
        return tuple(v for v in self.variants if not v.is_accepted)

    @property
    def selected(self) -> VariantDecision | None:
        """Return the fastest accepted candidate (first given on a tie), or None."""
        return min(self.accepted, key=lambda v: v.latency_p50_ms, default=None)


def gate_variants(
    reference: GateSubject,
    candidates: Sequence[GateSubject],
    max_map_drop: float = DEFAULT_MAX_MAP_DROP,
    require_faster: bool = True,
) -> GateDecision:
    """Decide which candidates may replace the reference (FP32) model.

    Args:
        reference: The FP32 model's evaluation.
        candidates: Evaluations of its variants, on the same dataset and machine.
        max_map_drop: Largest accepted mAP50-95 drop, a fraction in [0, 1] (0.01: 1 point).
        require_faster: Whether a candidate must also have a lower p50 latency.

    Raises:
        InvalidInputError: When there is no candidate or ``max_map_drop`` is out of range.
    """
    if not candidates:
        raise InvalidInputError("candidates: expected at least one variant to gate, got none")
    if not 0.0 <= max_map_drop <= 1.0:
        raise InvalidInputError(f"max_map_drop: expected a fraction in [0, 1], got {max_map_drop}")
    for subject in (reference, *candidates):
        if not subject.latency_p50_ms > 0.0:
            raise InvalidInputError(
                f"{subject.label}: expected a positive p50 latency, got {subject.latency_p50_ms}"
            )
    return GateDecision(
        reference_label=reference.label,
        reference_map_50_95=reference.map_50_95,
        reference_latency_p50_ms=reference.latency_p50_ms,
        max_map_drop=max_map_drop,
        require_faster=require_faster,
        variants=tuple(_decide(reference, c, max_map_drop, require_faster) for c in candidates),
    )


def _decide(
    reference: GateSubject, candidate: GateSubject, max_map_drop: float, require_faster: bool
) -> VariantDecision:
    drop = reference.map_50_95 - candidate.map_50_95
    is_accurate = drop <= max_map_drop + _MAP_EPSILON
    is_faster = candidate.latency_p50_ms < reference.latency_p50_ms
    speedup = reference.latency_p50_ms / candidate.latency_p50_ms
    accuracy = (
        f"mAP50-95 {candidate.map_50_95:.4f} vs {reference.map_50_95:.4f}: drop {drop:+.4f} "
        f"{'within' if is_accurate else 'exceeds'} the bound {max_map_drop:.4f}"
    )
    speed = (
        f"p50 {candidate.latency_p50_ms:.2f} ms vs {reference.latency_p50_ms:.2f} ms: "
        f"{speedup:.2f}x, {'faster' if is_faster else 'not faster'}"
        f"{'' if require_faster else ' (speed not required)'}"
    )
    return VariantDecision(
        label=candidate.label,
        is_accepted=is_accurate and (is_faster or not require_faster),
        reasons=(accuracy, speed),
        map_50_95=candidate.map_50_95,
        reference_map_50_95=reference.map_50_95,
        map_drop=drop,
        latency_p50_ms=candidate.latency_p50_ms,
        reference_latency_p50_ms=reference.latency_p50_ms,
        speedup=speedup,
    )
