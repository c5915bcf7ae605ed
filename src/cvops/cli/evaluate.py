"""``cvops eval-det``, ``cvops evaluate`` and ``cvops gate``: detection accuracy, latency, export gate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from cvops.cli.app import app
from cvops.evaluation.detection import (
    DetectionReport,
    EvaluationSettings,
    evaluate_detections,
    read_coco_results,
)
from cvops.evaluation.gate import DEFAULT_MAX_MAP_DROP, GateDecision, gate_variants
from cvops.evaluation.model_eval import EVAL_DETECTOR_SETTINGS, ModelEvaluation, evaluate_model
from cvops.evaluation.report import gate_decision_to_dict, model_evaluation_to_dict, write_report

GATE_JSON = "gate.json"
# `cvops gate` exits with this when no candidate passes (2 stays "cvops error").
EXIT_NOTHING_PASSES = 3

_DEFAULTS = EvaluationSettings()
_SCORE_HELP = "Score threshold of recall, per-class P/R and the confusion matrix (mAP uses every box)."


@app.command("eval-det")
def eval_det(
    gt: Path = typer.Option(..., "--gt", help="COCO ground-truth JSON (images, annotations, categories)."),
    pred: Path = typer.Option(
        ..., "--pred", help="COCO results JSON: a list of {image_id, category_id, bbox [x,y,w,h], score}."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write report.json, report.html and the PNG figures here."
    ),
    score_threshold: float = typer.Option(_DEFAULTS.score_threshold, min=0.0, max=1.0, help=_SCORE_HELP),
) -> None:
    """Score COCO detections against COCO ground truth: COCOeval mAP, recall, confusion, PR curves."""
    settings = dataclasses.replace(_DEFAULTS, score_threshold=score_threshold)
    report = evaluate_detections(gt, read_coco_results(pred), settings)
    console = Console()
    console.print(_report_table(report, f"{pred.name} vs {gt.name}"))
    if out is not None:
        files = write_report(out, report, f"{pred.name} vs {gt.name}")
        console.print(f"wrote {files.json}, {files.html}")


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="Model package folder (model.json + model)."),
    data: Path = typer.Option(
        ..., "--data", help="COCO ground-truth JSON, or a dataset folder with annotations_coco_val.json."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write report.json, report.html and the PNG figures here."
    ),
    score_threshold: float = typer.Option(_DEFAULTS.score_threshold, min=0.0, max=1.0, help=_SCORE_HELP),
    threads: int = typer.Option(0, min=0, help="Runtime CPU threads (0: runtime default)."),
    warmup: int = typer.Option(3, min=0, help="Untimed runs on the first image before timing."),
) -> None:
    """Run a model package on a dataset's images: COCO mAP, recall, confusion, latency p50/p99, FPS.

    Images run one at a time, after untimed warm-up runs.
    Latency is the detector call (preprocess, inference, decode, NMS), not the image decode.
    """
    settings = dataclasses.replace(_DEFAULTS, score_threshold=score_threshold)
    evaluation = _evaluate(model, data, settings, threads, warmup)
    console = Console()
    console.print(_report_table(evaluation.report, evaluation.label, evaluation))
    if out is not None:
        files = write_report(out, evaluation.report, f"{evaluation.label} on {data.name}", evaluation)
        console.print(f"wrote {files.json}, {files.html}")


@app.command()
def gate(
    reference: Path = typer.Option(..., "--reference", help="The FP32 model package."),
    candidate: list[Path] = typer.Option(
        ..., "--candidate", help="A variant package (INT8, FP16, engine); repeat for more."
    ),
    data: Path = typer.Option(
        ..., "--data", help="COCO ground-truth JSON, or a dataset folder with annotations_coco_val.json."
    ),
    max_map_drop: float = typer.Option(
        DEFAULT_MAX_MAP_DROP, min=0.0, max=1.0, help="Largest accepted mAP50-95 drop (0.01: 1 point)."
    ),
    allow_slower: bool = typer.Option(
        False, "--allow-slower", help="Accept variants that are not faster than the reference."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help=f"Write the decision to {GATE_JSON} here."),
    threads: int = typer.Option(0, min=0, help="Runtime CPU threads (0: runtime default)."),
    warmup: int = typer.Option(3, min=0, help="Untimed runs on the first image before timing."),
) -> None:
    """Gate exported variants against the FP32 model: accuracy within the bound AND faster.

    Every model runs on the same images, one after another, on this machine.
    Each candidate is printed as accepted or rejected, with its mAP50-95 drop and p50 latency.
    Exit code: 0 when a candidate passes (rejected ones are still listed and in gate.json).
    Exit code: 3 when none passes; 2 on an error.
    """
    evaluations = [_evaluate(p, data, _DEFAULTS, threads, warmup) for p in (reference, *candidate)]
    decision = gate_variants(evaluations[0], evaluations[1:], max_map_drop, require_faster=not allow_slower)
    console = Console()
    console.print(_gate_table(decision))
    console.print(_gate_reasons(decision))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        content = {
            "decision": gate_decision_to_dict(decision),
            "evaluations": [model_evaluation_to_dict(e) for e in evaluations],
        }
        (out / GATE_JSON).write_text(json.dumps(content, indent=1) + "\n")
        console.print(f"wrote {out / GATE_JSON}")
    if not decision.accepted:
        raise typer.Exit(EXIT_NOTHING_PASSES)


def _evaluate(
    package: Path, data: Path, settings: EvaluationSettings, threads: int, warmup: int
) -> ModelEvaluation:
    detector_settings = dataclasses.replace(EVAL_DETECTOR_SETTINGS, num_threads=threads)
    with Progress(
        TextColumn(f"[bold]{package.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("evaluate", total=None)
        return evaluate_model(
            package,
            data,
            settings,
            detector_settings,
            warmup_runs=warmup,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


def _report_table(report: DetectionReport, title: str, evaluation: ModelEvaluation | None = None) -> Table:
    table = Table("metric", "value", title=title, box=box.SIMPLE_HEAD)
    threshold = f"score >= {report.settings.score_threshold:g}"
    rows = [
        (
            "images / boxes / detections",
            f"{report.image_count} / {report.gt_count} / {report.detection_count}",
        ),
        ("mAP50-95", f"{report.map_50_95:.4f}"),
        ("mAP50", f"{report.map_50:.4f}"),
        ("mAP75", f"{report.map_75:.4f}"),
        (f"recall@0.50 ({threshold})", f"{report.recall_50:.4f}"),
        (f"recall@0.75 ({threshold})", f"{report.recall_75:.4f}"),
    ]
    if evaluation is not None:
        latency = evaluation.latency
        rows += [
            ("latency p50 / p99 (ms)", f"{latency.p50_ms:.2f} / {latency.p99_ms:.2f}"),
            ("FPS (batch 1)", f"{latency.fps:.1f}"),
        ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _gate_table(decision: GateDecision) -> Table:
    table = Table(
        "variant", "decision", "mAP50-95", "drop", "p50 ms", "speedup",
        title=(
            f"Export gate vs {decision.reference_label}: mAP50-95 {decision.reference_map_50_95:.4f}, "
            f"p50 {decision.reference_latency_p50_ms:.2f} ms, max drop {decision.max_map_drop:.4f}"
        ),
        box=box.SIMPLE_HEAD,
    )  # fmt: skip
    for v in decision.variants:
        table.add_row(
            Text(v.label),
            Text("accepted", "green") if v.is_accepted else Text("rejected", "red"),
            f"{v.map_50_95:.4f}",
            f"{v.map_drop:+.4f}",
            f"{v.latency_p50_ms:.2f}",
            f"{v.speedup:.2f}x",
        )
    return table


def _gate_reasons(decision: GateDecision) -> Text:
    lines = [f"{v.label}: {reason}" for v in decision.variants for reason in v.reasons]
    return Text("\n".join(lines))
