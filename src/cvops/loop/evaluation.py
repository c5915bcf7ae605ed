"""Evaluation step of the loop: score a package on held-out data, write the report, flatten the numbers."""

from __future__ import annotations

import json
from pathlib import Path

from cvops.evaluation.model_eval import ModelEvaluation

METRICS_FILE = "metrics.json"


def evaluation_metrics(evaluation: ModelEvaluation) -> dict[str, float]:
    """Return an evaluation as flat metrics: headline numbers and ``per_class/<name>/<metric>``.

    Undefined values (a class without predictions has no precision) are left out.
    """
    report = evaluation.report
    metrics = {
        "map_50_95": report.map_50_95,
        "map_50": report.map_50,
        "recall_50": report.recall_50,
        "recall_75": report.recall_75,
        "latency_p50_ms": evaluation.latency.p50_ms,
        "latency_p99_ms": evaluation.latency.p99_ms,
        "fps": evaluation.latency.fps,
    }
    for item in report.per_class:
        for key in ("precision", "recall", "ap_50_95", "ap_50"):
            value = getattr(item, key)
            if value is not None:
                metrics[f"per_class/{item.name}/{key}"] = float(value)
    return {key: float(value) for key, value in metrics.items() if value is not None}


def evaluate_package(package_dir: Path, heldout: Path, out_dir: Path) -> dict[str, float]:
    """Score ``package_dir`` on ``heldout`` (COCO) and return the flat metrics.

    Writes report.json/html and figures, and the flat metrics as ``metrics.json``, to ``out_dir``.
    """
    from cvops.evaluation.model_eval import evaluate_model
    from cvops.evaluation.report import write_report

    evaluation = evaluate_model(package_dir, heldout)
    write_report(out_dir, evaluation.report, f"{evaluation.label} on {heldout.name}", evaluation)
    metrics = evaluation_metrics(evaluation)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def read_metrics(out_dir: Path) -> dict[str, float]:
    """Return the flat metrics :func:`evaluate_package` wrote to ``out_dir``."""
    from cvops.data.formats import load_json

    document = load_json(out_dir / METRICS_FILE)
    return {str(key): float(value) for key, value in document.items()}
