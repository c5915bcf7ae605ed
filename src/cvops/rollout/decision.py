"""The A/B gate's decision rule: frozen thresholds in, a table of checks and an outcome out.

Promote only when every check passes; any failed check rolls the challenger back. The rule
reads intervals, not point estimates, where an interval exists: the challenger must be shown
not to be worse by more than the bound (lower bound of the mAP and recall deltas, upper bound
of its p99 latency), so too little evidence (a wide interval) rolls back rather than promotes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from cvops.errors import InvalidInputError
from cvops.rollout.statistics import Interval

Outcome = Literal["promote", "rollback"]


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Thresholds of the A/B gate and how its intervals are computed.

    Attributes:
        max_map_drop: Largest mAP50-95 drop tolerated: promote only if the lower bound of the
            challenger-minus-champion interval is above ``-max_map_drop``.
        max_recall_drop: Same for recall at IoU 0.5 (operating point score 0.25).
        max_class_ap_drop: Largest AP50-95 drop of any one class (point estimate).
        min_class_gt: Classes with fewer ground-truth boxes are not checked one by one.
        slo_p99_ms: The challenger's p99 latency through the router must stay below this
            (upper bound of its request-bootstrap interval).
        max_p99_increase_ms: Optional bound on the p99 increase over the champion (upper bound
            of the interval of the difference); None: not checked.
        min_requests_per_variant: Fewer answered requests of either variant is too little evidence.
        max_error_rate: Largest share of failed challenger requests.
        max_score_ks: Optional bound on the KS statistic between the two score distributions.
        min_shadow_agreement: Optional least mean matched-box fraction on shadowed frames.
        confidence: Coverage of every interval.
        n_resamples: Bootstrap resamples.
        seed: Seed of every resampling, so evidence can be reproduced.
    """

    max_map_drop: float = 0.01
    max_recall_drop: float = 0.02
    max_class_ap_drop: float = 0.05
    min_class_gt: int = 5
    slo_p99_ms: float = 250.0
    max_p99_increase_ms: float | None = None
    min_requests_per_variant: int = 10
    max_error_rate: float = 0.01
    max_score_ks: float | None = None
    min_shadow_agreement: float | None = None
    confidence: float = 0.95
    n_resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject impossible thresholds with what was expected."""
        for name in ("max_map_drop", "max_recall_drop", "max_class_ap_drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if self.slo_p99_ms <= 0:
            raise InvalidInputError(f"slo_p99_ms: expected > 0, got {self.slo_p99_ms}")
        if self.min_class_gt < 1 or self.min_requests_per_variant < 1:
            got = f"{self.min_class_gt}, {self.min_requests_per_variant}"
            raise InvalidInputError(f"min_class_gt, min_requests_per_variant: expected >= 1, got {got}")
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise InvalidInputError(f"max_error_rate: expected a value in [0, 1], got {self.max_error_rate}")
        if not 0.0 < self.confidence < 1.0:
            raise InvalidInputError(f"confidence: expected a value in (0, 1), got {self.confidence}")
        if self.n_resamples < 10:
            raise InvalidInputError(f"n_resamples: expected >= 10, got {self.n_resamples}")

    def to_dict(self) -> dict[str, Any]:
        """Return the thresholds as JSON-ready data (recorded with every decision)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GateInputs:
    """The numbers the rule reads (a summary of the evidence).

    Attributes:
        map_delta: Challenger minus champion mAP50-95 on the held-out set.
        recall_delta: Challenger minus champion recall at IoU 0.5.
        class_deltas: (class name, ground-truth boxes, AP50-95 change or None) per class.
        challenger_p99_ms: The challenger's p99 latency through the router.
        p99_delta_ms: Challenger minus champion p99 (None when the champion answered nothing).
        requests: Answered requests per variant (``champion``, ``challenger``).
        challenger_error_rate: Failed share of the requests sent to the challenger.
        score_ks: KS statistic between the variants' detection scores (None: no scores).
        shadow_agreement: Mean matched-box fraction on shadowed frames (None: no shadow traffic).
    """

    map_delta: Interval
    recall_delta: Interval
    class_deltas: tuple[tuple[str, int, float | None], ...]
    challenger_p99_ms: Interval | None
    p99_delta_ms: Interval | None
    requests: dict[str, int]
    challenger_error_rate: float
    score_ks: float | None
    shadow_agreement: float | None


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the decision table.

    Attributes:
        name: What is checked, e.g. ``map_50_95_delta``.
        is_passed: Whether it passed.
        value: The number compared.
        bound: The threshold it was compared with.
        detail: One sentence saying what was compared.
    """

    name: str
    is_passed: bool
    value: float | None
    bound: float | None
    detail: str


def decide(inputs: GateInputs, config: GateConfig) -> tuple[Outcome, tuple[Check, ...]]:
    """Apply the rule: every check must pass to promote.

    Returns:
        The outcome and every check, in a fixed order.
    """
    checks = [
        _at_least(
            "map_50_95_delta", inputs.map_delta.low, -config.max_map_drop, "lower CI bound of mAP delta"
        ),
        _at_least(
            "recall_50_delta",
            inputs.recall_delta.low,
            -config.max_recall_drop,
            "lower CI bound of recall delta",
        ),
        _class_check(inputs.class_deltas, config),
        _traffic_check(inputs.requests, config.min_requests_per_variant),
        _at_most(
            "challenger_error_rate", inputs.challenger_error_rate, config.max_error_rate, "failed share"
        ),
    ]
    p99 = None if inputs.challenger_p99_ms is None else inputs.challenger_p99_ms.high
    checks.append(
        _at_most("p99_latency_ms", p99, config.slo_p99_ms, "upper CI bound of challenger p99 vs SLO")
    )
    if config.max_p99_increase_ms is not None:
        increase = None if inputs.p99_delta_ms is None else inputs.p99_delta_ms.high
        checks.append(
            _at_most("p99_delta_ms", increase, config.max_p99_increase_ms, "upper CI bound of p99 increase")
        )
    if config.max_score_ks is not None:
        checks.append(_at_most("score_ks", inputs.score_ks, config.max_score_ks, "KS statistic of scores"))
    if config.min_shadow_agreement is not None:
        agreement, bound = inputs.shadow_agreement, config.min_shadow_agreement
        checks.append(
            _at_least("shadow_agreement", agreement, bound, "mean matched fraction, shadowed frames")
        )
    outcome: Outcome = "promote" if all(check.is_passed for check in checks) else "rollback"
    return outcome, tuple(checks)


def _at_least(name: str, value: float | None, bound: float, what: str) -> Check:
    if value is None:
        return Check(name, False, None, bound, f"{what}: not measured (needs >= {bound:.4g})")
    return Check(name, value >= bound, value, bound, f"{what}: {value:.4g} (needs >= {bound:.4g})")


def _at_most(name: str, value: float | None, bound: float, what: str) -> Check:
    if value is None:
        return Check(name, False, None, bound, f"{what}: not measured (needs <= {bound:.4g})")
    return Check(name, value <= bound, value, bound, f"{what}: {value:.4g} (needs <= {bound:.4g})")


def _class_check(class_deltas: tuple[tuple[str, int, float | None], ...], config: GateConfig) -> Check:
    checked = [(n, d) for n, gt, d in class_deltas if gt >= config.min_class_gt and d is not None]
    worst = min(checked, key=lambda item: item[1], default=None)
    bound = -config.max_class_ap_drop
    if worst is None:
        return Check("per_class_ap_delta", True, None, bound, f"no class has >= {config.min_class_gt} boxes")
    regressed = [n for n, d in checked if d < bound]
    detail = f"worst class {worst[0]!r}: AP50-95 delta {worst[1]:.4g} (needs >= {bound:.4g})"
    if regressed:
        detail += f"; regressed: {', '.join(regressed)}"
    return Check("per_class_ap_delta", not regressed, worst[1], bound, detail)


def _traffic_check(requests: dict[str, int], minimum: int) -> Check:
    least = min(requests.get("champion", 0), requests.get("challenger", 0))
    detail = (
        f"answered requests: champion {requests.get('champion', 0)}, challenger "
        f"{requests.get('challenger', 0)} (needs >= {minimum} each)"
    )
    return Check("requests_per_variant", least >= minimum, float(least), float(minimum), detail)
