"""The export gate in front of the registry: only variants that pass are stored with a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cvops.evaluation.gate import DEFAULT_MAX_MAP_DROP, GateDecision, gate_variants
from cvops.evaluation.model_eval import evaluate_model


@dataclass(frozen=True, slots=True)
class GatedVariants:
    """The gate's decision on a model's export variants, ready for registration.

    Attributes:
        decision: Every variant's verdict with its numbers.
        accepted: The variants that passed, by name: the only ones to register.
        metrics: The reference's mAP50-95 and latency, and per variant ``gate.<name>.accepted``
            (1 or 0), ``.map_50_95``, ``.map_drop`` and ``.speedup``: rejected variants stay on
            record with their numbers instead of disappearing.
    """

    decision: GateDecision
    accepted: dict[str, Path]
    metrics: dict[str, float]


def gate_export_variants(
    reference: Path, variants: Mapping[str, Path], dataset: Path, max_map_drop: float = DEFAULT_MAX_MAP_DROP
) -> GatedVariants:
    """Evaluate the reference (FP32) package and each variant on ``dataset``, then gate them.

    Args:
        reference: The FP32 package the variants were exported from.
        variants: Export variants by name (``int8``, ``fp16``, ``trt``), package folders.
        dataset: COCO ground truth (file or folder) every package is scored on.
        max_map_drop: Largest mAP50-95 drop against the reference a variant may have (0..1).
    """
    scored = evaluate_model(reference, dataset)
    candidates = {name: evaluate_model(path, dataset) for name, path in variants.items()}
    decision = gate_variants(scored, list(candidates.values()), max_map_drop)
    metrics = {"map_50_95": scored.map_50_95, "latency_p50_ms": scored.latency_p50_ms}
    accepted: dict[str, Path] = {}
    for name, verdict in zip(candidates, decision.variants, strict=True):
        metrics |= {
            f"gate.{name}.accepted": float(verdict.is_accepted),
            f"gate.{name}.map_50_95": verdict.map_50_95,
            f"gate.{name}.map_drop": verdict.map_drop,
            f"gate.{name}.speedup": verdict.speedup,
        }
        if verdict.is_accepted:
            accepted[name] = variants[name]
    return GatedVariants(decision, accepted, metrics)
