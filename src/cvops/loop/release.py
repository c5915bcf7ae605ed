"""Release steps of the loop: export every variant behind the accuracy gate, register a challenger."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cvops.evaluation.gate import DEFAULT_MAX_MAP_DROP
from cvops.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry
from cvops.registry.records import Lineage, RegisteredVersion

GATE_REPORT = "gate.json"


@dataclass(frozen=True, slots=True)
class GatedExport:
    """What the export gate let through.

    Attributes:
        reference: The FP32 package (carries the checkpoint).
        accepted: Variants that passed, by name: the only ones to register.
        rejected: Variants that failed, by name, with the gate's reasons (numbers included).
        skipped: Variants not built here, by name, with the reason.
        metrics: The reference's mAP50-95 and latency and every variant's gate numbers.
        report: ``gate.json``: all of the above for people and later steps.
    """

    reference: Path
    accepted: dict[str, Path]
    rejected: dict[str, str]
    skipped: dict[str, str]
    metrics: dict[str, float]
    report: Path


def export_and_gate(
    checkpoint: str,
    heldout: Path,
    out_dir: Path,
    imgsz: int = 640,
    calibration_dir: Path | None = None,
    max_map_drop: float = DEFAULT_MAX_MAP_DROP,
) -> GatedExport:
    """Export ``checkpoint`` to every variant, score each on ``heldout`` and keep those that pass.

    Args:
        checkpoint: The trained ``.pt``.
        heldout: COCO ground truth (file or folder) the packages are scored on.
        out_dir: One package folder per variant, plus ``gate.json``.
        imgsz: Export input size in pixels (a multiple of 32).
        calibration_dir: Images for INT8 calibration; INT8 is skipped without them.
        max_map_drop: Largest mAP50-95 drop a variant may have against FP32 (0.01: 1 point).
    """
    from cvops.evaluation.release import gate_export_variants
    from cvops.training.variants import export_variants

    exported = export_variants(checkpoint, out_dir, imgsz, calibration_dir=calibration_dir)
    gated = gate_export_variants(exported.reference, exported.variants, heldout, max_map_drop)
    rejected = {
        name: " ".join(verdict.reasons)
        for name, verdict in zip(exported.variants, gated.decision.variants, strict=True)
        if not verdict.is_accepted
    }
    report = out_dir / GATE_REPORT
    document = {
        "reference": str(exported.reference),
        "max_map_drop": max_map_drop,
        "accepted": {name: str(path) for name, path in gated.accepted.items()},
        "rejected": rejected,
        "skipped": exported.skipped,
        "metrics": gated.metrics,
    }
    report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return GatedExport(exported.reference, gated.accepted, rejected, exported.skipped, gated.metrics, report)


def register_challenger(
    package_dir: Path,
    name: str,
    variants: Mapping[str, Path] | None = None,
    lineage: Lineage | None = None,
    metrics: Mapping[str, float] | None = None,
    tracking_uri: str | None = None,
    who: str = "continuous-training",
) -> RegisteredVersion:
    """Register a package (with its accepted variants) and point the ``challenger`` alias at it.

    Args:
        package_dir: The FP32 package.
        name: Registered model name.
        variants: Accepted export variants by name.
        lineage: Dataset version and URI, parent version, training run, pipeline run.
        metrics: Evaluation and gate numbers stored with the version.
        tracking_uri: MLflow tracking URI; the embedded sqlite store when None.
        who: Recorded as the author of the alias move.
    """
    registry = ModelRegistry(tracking_uri)
    version = registry.register(package_dir, name, lineage, metrics, variants)
    registry.promote(
        name,
        version.version,
        who=who,
        why="new challenger from the continuous-training loop",
        evidence=dict(metrics or {}),
        alias=CHALLENGER,
    )
    return registry.show(name, version.version)


def register_gated(
    packages_dir: Path,
    name: str,
    tracking_uri: str | None = None,
    evaluation_dir: Path | None = None,
    lineage: Lineage | None = None,
) -> RegisteredVersion:
    """Register what :func:`export_and_gate` wrote to ``packages_dir`` as the new challenger.

    The accepted variants and the gate's numbers come from ``gate.json``; the evaluation's
    metrics (per class too) from ``evaluation_dir`` when given; the parent version is the
    champion at the time, if any.
    """
    from cvops.data.formats import load_json
    from cvops.errors import RegistryNotFoundError
    from cvops.loop.evaluation import read_metrics

    gate = load_json(packages_dir / GATE_REPORT)
    metrics = {str(k): float(v) for k, v in gate["metrics"].items()}
    if evaluation_dir is not None:
        metrics |= read_metrics(evaluation_dir)
    accepted = {str(k): packages_dir / Path(v).name for k, v in gate["accepted"].items()}
    lineage = lineage or Lineage()
    if lineage.parent_version is None:
        try:
            champion = ModelRegistry(tracking_uri).show(name, CHAMPION)
        except RegistryNotFoundError:
            pass
        else:
            lineage = replace(lineage, parent_version=f"{name}/{champion.version}")
    return register_challenger(
        packages_dir / gate_reference_name(gate), name, accepted, lineage, metrics, tracking_uri
    )


def gate_reference_name(gate: dict[str, object]) -> str:
    """Return the reference package's folder name from a ``gate.json`` document."""
    return Path(str(gate["reference"])).name
