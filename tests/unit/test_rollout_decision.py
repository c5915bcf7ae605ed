"""The A/B gate's decision table: which evidence promotes, which rolls back, and why."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cvops.errors import InvalidInputError
from cvops.rollout.decision import GateConfig, GateInputs, decide
from cvops.rollout.statistics import Interval


def _interval(estimate: float, low: float, high: float) -> Interval:
    return Interval(estimate, low, high, 0.95)


GOOD = GateInputs(
    map_delta=_interval(0.004, -0.006, 0.012),
    recall_delta=_interval(0.0, -0.01, 0.01),
    class_deltas=(("person", 40, 0.01), ("car", 12, -0.02), ("kite", 1, -0.5)),
    challenger_p99_ms=_interval(80.0, 70.0, 95.0),
    p99_delta_ms=_interval(5.0, -3.0, 12.0),
    requests={"champion": 40, "challenger": 12},
    challenger_error_rate=0.0,
    score_ks=0.05,
    shadow_agreement=0.97,
)
CONFIG = GateConfig(max_map_drop=0.01, slo_p99_ms=100.0, min_class_gt=5)


@pytest.mark.parametrize(
    ("changes", "config_changes", "outcome", "failed"),
    [
        ({}, {}, "promote", set()),
        ({"map_delta": _interval(-0.005, -0.03, 0.02)}, {}, "rollback", {"map_50_95_delta"}),
        ({"map_delta": _interval(-0.005, -0.03, 0.02)}, {"max_map_drop": 0.05}, "promote", set()),
        ({"recall_delta": _interval(-0.05, -0.08, -0.02)}, {}, "rollback", {"recall_50_delta"}),
        ({"class_deltas": (("person", 40, 0.01), ("car", 12, -0.2))}, {}, "rollback", {"per_class_ap_delta"}),
        ({"class_deltas": (("kite", 1, -0.9),)}, {}, "promote", set()),
        ({"challenger_p99_ms": _interval(90.0, 70.0, 130.0)}, {}, "rollback", {"p99_latency_ms"}),
        ({"challenger_p99_ms": None}, {}, "rollback", {"p99_latency_ms"}),
        ({"requests": {"champion": 40, "challenger": 3}}, {}, "rollback", {"requests_per_variant"}),
        ({"challenger_error_rate": 0.1}, {}, "rollback", {"challenger_error_rate"}),
        ({}, {"max_p99_increase_ms": 10.0}, "rollback", {"p99_delta_ms"}),
        ({}, {"max_p99_increase_ms": 20.0}, "promote", set()),
        ({"score_ks": 0.4}, {"max_score_ks": 0.2}, "rollback", {"score_ks"}),
        ({"shadow_agreement": None}, {"min_shadow_agreement": 0.9}, "rollback", {"shadow_agreement"}),
        (
            {"map_delta": _interval(-0.2, -0.3, -0.1), "challenger_p99_ms": _interval(300.0, 250.0, 400.0)},
            {},
            "rollback",
            {"map_50_95_delta", "p99_latency_ms"},
        ),
    ],
    ids=[
        "all-good",
        "map-ci-below-bound",
        "map-ci-within-looser-bound",
        "recall-drop",
        "one-class-regressed",
        "tiny-class-not-checked",
        "p99-upper-bound-over-slo",
        "no-challenger-latency",
        "too-little-challenger-traffic",
        "challenger-errors",
        "p99-increase-bound",
        "p99-increase-within-bound",
        "score-distribution-shift",
        "no-shadow-data-when-required",
        "several-failures",
    ],
)
def test_decision_table(
    changes: dict[str, Any], config_changes: dict[str, Any], outcome: str, failed: set[str]
) -> None:
    decided, checks = decide(replace(GOOD, **changes), replace(CONFIG, **config_changes))
    assert decided == outcome
    assert {c.name for c in checks if not c.is_passed} == failed
    for check in checks:
        assert check.detail, check.name


def test_every_check_names_value_and_bound() -> None:
    _, checks = decide(GOOD, CONFIG)
    by_name = {c.name: c for c in checks}
    assert by_name["map_50_95_delta"].value == -0.006
    assert by_name["map_50_95_delta"].bound == -0.01
    assert by_name["p99_latency_ms"].value == 95.0
    assert "car" in by_name["per_class_ap_delta"].detail  # the worst checked class


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_map_drop": -0.1}, "max_map_drop"),
        ({"slo_p99_ms": 0}, "slo_p99_ms"),
        ({"min_requests_per_variant": 0}, "min_requests_per_variant"),
        ({"confidence": 1.5}, "confidence"),
        ({"n_resamples": 3}, "n_resamples"),
    ],
    ids=["negative-drop", "zero-slo", "zero-requests", "confidence", "resamples"],
)
def test_config_rejects_impossible_thresholds(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        GateConfig(**kwargs)
