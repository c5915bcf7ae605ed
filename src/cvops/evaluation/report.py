"""Write evaluation results: ``report.json``, two PNG figures and a self-contained HTML page.

The figures are drawn with matplotlib's Agg canvas (no display, no global backend switch).
The HTML page embeds them as data URIs and links to the PNG files beside it; it loads nothing
from the network (no scripts, fonts or style sheets).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvops.evaluation.detection import BACKGROUND, ConfusionMatrix, DetectionReport, PrCurve
from cvops.evaluation.gate import GateDecision
from cvops.evaluation.model_eval import ModelEvaluation

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
CONFUSION_PNG = "confusion_matrix.png"
PR_CURVES_PNG = "pr_curves.png"

# Beyond this many classes the figures drop per-cell numbers and the legend.
_MAX_LABELED_CLASSES = 20


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where :func:`write_report` wrote its files."""

    json: Path
    html: Path
    confusion_png: Path
    pr_curves_png: Path


def detection_report_to_dict(report: DetectionReport) -> dict[str, Any]:
    """Return a JSON-ready dict of a report (fractions in 0..1, undefined values as null)."""
    return {
        "map_50_95": report.map_50_95,
        "map_50": report.map_50,
        "map_75": report.map_75,
        "recall_50": report.recall_50,
        "recall_75": report.recall_75,
        "settings": asdict(report.settings),
        "image_count": report.image_count,
        "gt_count": report.gt_count,
        "detection_count": report.detection_count,
        "coco_stats": report.coco_stats.as_dict(),
        "per_class": [asdict(c) for c in report.per_class],
        "confusion_matrix": {
            "rows": "ground truth",
            "columns": "prediction",
            "class_names": list(report.confusion.class_names),
            "counts": report.confusion.counts.tolist(),
            "iou_threshold": report.confusion.iou_threshold,
            "score_threshold": report.confusion.score_threshold,
        },
        "pr_curves": [
            {
                "category_id": c.category_id,
                "name": c.name,
                "iou_thresholds": [0.5, 0.75],
                "recall": np.round(c.recall, 4).tolist(),
                "precision_50": np.round(c.precision_50, 6).tolist(),
                "precision_75": np.round(c.precision_75, 6).tolist(),
            }
            for c in report.pr_curves
        ],
    }


def model_evaluation_to_dict(evaluation: ModelEvaluation) -> dict[str, Any]:
    """Return a JSON-ready dict of a model evaluation: model, latency and the detection report."""
    return {
        "model": {
            "name": evaluation.name,
            "precision": evaluation.precision,
            "format": evaluation.model_format,
            "package_dir": str(evaluation.package_dir),
            "unmatched_class_names": list(evaluation.unmatched_class_names),
        },
        "ground_truth": str(evaluation.ground_truth),
        "latency": asdict(evaluation.latency),
        "detection": detection_report_to_dict(evaluation.report),
    }


def gate_decision_to_dict(decision: GateDecision) -> dict[str, Any]:
    """Return a JSON-ready dict of a gate decision, every candidate included."""
    selected = decision.selected
    return {
        "reference": {
            "label": decision.reference_label,
            "map_50_95": decision.reference_map_50_95,
            "latency_p50_ms": decision.reference_latency_p50_ms,
        },
        "max_map_drop": decision.max_map_drop,
        "require_faster": decision.require_faster,
        "accepted": [v.label for v in decision.accepted],
        "rejected": [v.label for v in decision.rejected],
        "selected": None if selected is None else selected.label,
        "variants": [{**asdict(v), "reasons": list(v.reasons)} for v in decision.variants],
    }


def write_report(
    out_dir: Path,
    report: DetectionReport,
    title: str = "Detection evaluation",
    evaluation: ModelEvaluation | None = None,
) -> ReportFiles:
    """Write ``report.json``, ``confusion_matrix.png``, ``pr_curves.png`` and ``report.html``.

    Args:
        out_dir: Folder to write into (created if needed); files there are overwritten.
        report: The detection report.
        title: Heading of the HTML page.
        evaluation: When the report comes from a model run, its model and latency are added.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        out_dir / REPORT_JSON, out_dir / REPORT_HTML, out_dir / CONFUSION_PNG, out_dir / PR_CURVES_PNG
    )
    content = detection_report_to_dict(report) if evaluation is None else model_evaluation_to_dict(evaluation)
    files.json.write_text(json.dumps(content, indent=1) + "\n")
    plot_confusion_matrix(report.confusion, files.confusion_png)
    plot_pr_curves(report.pr_curves, report.map_50, files.pr_curves_png)
    files.html.write_text(_html(title, report, evaluation, files))
    return files


def plot_confusion_matrix(confusion: ConfusionMatrix, path: Path) -> None:
    """Draw the confusion matrix as a PNG, rows normalized (each row's colors sum to 1).

    Only classes that occur (in a row or a column) are drawn, plus background; the JSON keeps all.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = confusion.counts
    k = len(confusion.class_names) - 1
    shown = [i for i in range(k) if counts[i].any() or counts[:, i].any()] + [k]
    sub = counts[np.ix_(shown, shown)]
    names = [confusion.class_names[i] for i in shown]
    rows = sub.sum(axis=1, keepdims=True)
    normalized = np.divide(sub, rows, out=np.zeros(sub.shape, np.float64), where=rows > 0)
    side = min(4.0 + 0.45 * len(shown), 24.0)
    figure = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the row")
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title(
        f"Confusion matrix (IoU {confusion.iou_threshold:.2f}, score >= {confusion.score_threshold:.2f})"
    )
    if len(shown) <= _MAX_LABELED_CLASSES + 1:
        for (i, j), value in np.ndenumerate(sub):
            if value:
                color = "white" if normalized[i, j] > 0.5 else "black"
                axes.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_pr_curves(curves: Sequence[PrCurve], map_50: float, path: Path) -> None:
    """Draw each class's COCOeval PR curve at IoU 0.50, and their mean, as a PNG."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 6.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    is_labeled = len(curves) <= _MAX_LABELED_CLASSES
    palette = colormaps["tab20"]  # 20 distinct colors: one per labeled class
    for index, curve in enumerate(curves):
        ap_50 = float(np.mean(curve.precision_50))
        axes.plot(
            curve.recall,
            curve.precision_50,
            linewidth=1.0,
            label=f"{curve.name} {ap_50:.3f}" if is_labeled else None,
            color=palette(index) if is_labeled else "grey",
        )
    if curves:
        mean = np.mean([c.precision_50 for c in curves], axis=0)
        axes.plot(
            curves[0].recall, mean, linewidth=3.0, color="blue", label=f"all classes {map_50:.3f} mAP50"
        )
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    else:
        axes.text(0.5, 0.5, "no class has ground truth", ha="center", va="center")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title("Precision-recall at IoU 0.50 (COCOeval, area all, 100 dets)")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _html(title: str, report: DetectionReport, evaluation: ModelEvaluation | None, files: ReportFiles) -> str:
    summary: dict[str, str] = {}
    if evaluation is not None:
        summary |= {
            "model": evaluation.label,
            "format": evaluation.model_format,
            "package": str(evaluation.package_dir),
            "ground truth": str(evaluation.ground_truth),
        }
    summary |= {
        "images": str(report.image_count),
        "ground-truth boxes": str(report.gt_count),
        "detections": str(report.detection_count),
        "mAP50-95": f"{report.map_50_95:.4f}",
        "mAP50": f"{report.map_50:.4f}",
        "mAP75": f"{report.map_75:.4f}",
        f"recall@0.50 (score >= {report.settings.score_threshold:g})": f"{report.recall_50:.4f}",
        f"recall@0.75 (score >= {report.settings.score_threshold:g})": f"{report.recall_75:.4f}",
    }
    if evaluation is not None:
        latency = evaluation.latency
        summary |= {
            "latency p50 / p99": f"{latency.p50_ms:.2f} / {latency.p99_ms:.2f} ms",
            "throughput": f"{latency.fps:.1f} images/s (batch 1, {latency.warmup_runs} warm-up runs untimed)",
        }
        if evaluation.unmatched_class_names:
            summary["model classes not in the ground truth"] = ", ".join(evaluation.unmatched_class_names)
    rows = [
        [
            c.name,
            str(c.gt_count),
            str(c.pred_count),
            _fmt(c.precision),
            _fmt(c.recall),
            _fmt(c.ap_50),
            _fmt(c.ap_50_95),
        ]
        for c in report.per_class
        if c.gt_count or c.pred_count
    ]
    header = ["class", "boxes", "predictions", "precision", "recall", "AP50", "AP50-95"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{_table(["", "value"], [[k, v] for k, v in summary.items()])}
<h2>Per class</h2>
<p>Precision and recall at IoU {report.confusion.iou_threshold:g} and score &ge;
{report.settings.score_threshold:g}, matched greedily by score, one-to-one; AP from COCOeval.
Classes with neither boxes nor predictions are left out (see {REPORT_JSON}).</p>
{_table(header, rows)}
<h2>Confusion matrix</h2>
<p>Rows: ground truth; columns: prediction; {BACKGROUND}: missed boxes (column) and false
positives (row).</p>
{_figure(files.confusion_png)}
<h2>Precision-recall curves</h2>
{_figure(files.pr_curves_png)}
</body>
</html>
"""


def _figure(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    name = html.escape(png.name)
    return f'<a href="{name}"><img src="data:image/png;base64,{data}" alt="{name}"></a>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
