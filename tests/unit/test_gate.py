"""The export gate: accuracy bound AND faster, every candidate reported with its numbers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cvops.errors import InvalidInputError
from cvops.evaluation.gate import gate_variants


@dataclass(frozen=True)
class Variant:
    """The three numbers the gate reads of a ModelEvaluation."""

    label: str
    map_50_95: float
    latency_p50_ms: float


FP32 = Variant("best (fp32)", 0.50, 10.0)


@pytest.mark.parametrize(
    ("candidate", "require_faster", "is_accepted", "words"),
    [
        (Variant("int8", 0.495, 5.0), True, True, ["within", "faster"]),
        (Variant("int8", 0.49, 5.0), True, True, ["drop +0.0100 within"]),
        (Variant("int8", 0.4899, 5.0), True, False, ["drop +0.0101 exceeds the bound 0.0100"]),
        (Variant("int8", 0.52, 5.0), True, True, ["drop -0.0200 within"]),
        (Variant("int8", 0.50, 12.0), True, False, ["p50 12.00 ms vs 10.00 ms: 0.83x, not faster"]),
        (Variant("int8", 0.50, 10.0), True, False, ["1.00x, not faster"]),
        (Variant("int8", 0.50, 12.0), False, True, ["not faster (speed not required)"]),
        (Variant("int8", 0.40, 12.0), True, False, ["exceeds", "not faster"]),
        (Variant("int8", 0.40, 5.0), False, False, ["exceeds"]),
    ],
    ids=[
        "accurate-and-faster",
        "drop-exactly-at-bound",
        "drop-just-over-bound",
        "better-and-faster",
        "accurate-but-slower",
        "accurate-but-same-speed",
        "slower-allowed",
        "worse-and-slower",
        "worse-speed-not-required",
    ],
)
def test_one_candidate(candidate: Variant, require_faster: bool, is_accepted: bool, words: list[str]) -> None:
    decision = gate_variants(FP32, [candidate], max_map_drop=0.01, require_faster=require_faster)
    (verdict,) = decision.variants
    assert verdict.is_accepted is is_accepted
    assert (verdict.map_50_95, verdict.reference_map_50_95) == (candidate.map_50_95, 0.50)
    assert (verdict.latency_p50_ms, verdict.reference_latency_p50_ms) == (candidate.latency_p50_ms, 10.0)
    assert verdict.map_drop == pytest.approx(0.50 - candidate.map_50_95)
    assert verdict.speedup == pytest.approx(10.0 / candidate.latency_p50_ms)
    reasons = " ".join(verdict.reasons)
    for word in words:
        assert word in reasons


def test_rejected_candidates_are_kept_in_order_and_the_fastest_accepted_is_selected() -> None:
    candidates = [
        Variant("fp16", 0.499, 9.0),
        Variant("int8-broken", 0.10, 3.0),
        Variant("int8", 0.495, 4.0),
        Variant("engine-slow", 0.50, 11.0),
    ]
    decision = gate_variants(FP32, candidates)
    assert [v.label for v in decision.variants] == ["fp16", "int8-broken", "int8", "engine-slow"]
    assert [v.label for v in decision.accepted] == ["fp16", "int8"]
    assert [v.label for v in decision.rejected] == ["int8-broken", "engine-slow"]
    assert decision.selected is not None
    assert decision.selected.label == "int8"
    assert (decision.reference_label, decision.max_map_drop, decision.require_faster) == (
        "best (fp32)",
        0.01,
        True,
    )


def test_nothing_accepted_selects_nothing() -> None:
    decision = gate_variants(FP32, [Variant("int8", 0.3, 20.0)])
    assert decision.accepted == ()
    assert decision.selected is None


@pytest.mark.parametrize(
    ("candidates", "max_map_drop", "message"),
    [
        ([], 0.01, "candidates: expected at least one variant to gate, got none"),
        ([Variant("int8", 0.5, 5.0)], -0.01, r"max_map_drop: expected a fraction in \[0, 1\], got -0.01"),
        ([Variant("int8", 0.5, 5.0)], 1.5, r"max_map_drop: expected a fraction in \[0, 1\], got 1.5"),
        ([Variant("int8", 0.5, 0.0)], 0.01, "int8: expected a positive p50 latency, got 0.0"),
    ],
    ids=["no-candidate", "negative-bound", "bound-over-one", "zero-latency"],
)
def test_bad_arguments(candidates: list[Variant], max_map_drop: float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        gate_variants(FP32, candidates, max_map_drop)
