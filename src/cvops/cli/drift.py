"""``cvops drift``: test a current window of frames for data drift against a reference."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cvops.cli.app import app
from cvops.errors import InvalidInputError

# `cvops drift --fail-on-drift` exits with this when the window drifted (2 stays "cvops error").
EXIT_DRIFTED = 3


@app.command()
def drift(
    reference: Path = typer.Option(
        ...,
        "--reference",
        "-r",
        help="Reference window: dataset (data.yaml, COCO JSON or their folder), feature folder/.parquet, "
        ".txt frame list, or frame folder.",
    ),
    current: Path = typer.Option(
        ...,
        "--current",
        "-c",
        help="Current window: feature folder/.parquet, .txt frame list, or frame folder.",
    ),
    out: Path = typer.Option(
        Path("drift"), "--out", "-o", help="Folder for reports, gauges, tables, candidates."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Detector for score/box features: package folder or models:/NAME@ALIAS."
    ),
    model_name: str | None = typer.Option(
        None, help="Registered model to record the drift event on (with --model-version)."
    ),
    model_version: str | None = typer.Option(None, help="Version number or alias of --model-name."),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow tracking URI (default: the embedded registry)."
    ),
    pushgateway: str | None = typer.Option(
        None, help="Also push the gauges to this Prometheus Pushgateway URL."
    ),
    reference_label: str | None = typer.Option(
        None, help="Name of the reference window in gauges and events."
    ),
    current_label: str | None = typer.Option(None, help="Name of the current window in gauges and events."),
    drift_share_threshold: float = typer.Option(
        0.2, min=0.0, max=1.0, help="Drifted share of features that flags drift."
    ),
    min_drifted_features: int = typer.Option(2, min=1, help="Drifted features needed to flag drift."),
    strong_p_value: float = typer.Option(
        0.001, min=0.0, max=1.0, help="One feature's p-value below this flags drift on its own (0: off)."
    ),
    max_candidates: int = typer.Option(
        1000, min=0, help="Current frames listed as labeling candidates on drift."
    ),
    fail_on_drift: bool = typer.Option(False, help=f"Exit with code {EXIT_DRIFTED} when the window drifted."),
) -> None:
    """Compare image statistics, detections and image embeddings of two windows (Evidently + MMD).

    Writes drift.json, Evidently HTML and JSON reports, and drift.prom (Prometheus textfile).

    On drift, also candidates.txt, candidates.jsonl and candidates/ (a pool for `cvops select`).
    """
    from cvops.monitoring.drift import detect_drift
    from cvops.monitoring.results import DriftSettings

    if (model_name is None) != (model_version is None):
        raise InvalidInputError("--model-name and --model-version: expected both or neither")
    record_on = (
        f"models:/{model_name}{_version_suffix(model_version)}" if model_name and model_version else None
    )
    settings = DriftSettings(
        drift_share_threshold=drift_share_threshold,
        min_drifted_features=min_drifted_features,
        strong_p_value=strong_p_value,
        max_candidates=max_candidates,
    )
    result = detect_drift(
        reference,
        current,
        out,
        model if model is None or model.startswith("models:/") else Path(model),
        settings=settings,
        reference_label=reference_label,
        current_label=current_label,
        record_on=record_on,
        tracking_uri=tracking_uri,
        pushgateway_url=pushgateway,
    )
    table = Table(title=f"drift: {result.current} vs {result.reference}", box=box.SIMPLE)
    for column in ("feature", "table", "method", "score", "threshold", "drifted"):
        table.add_column(column)
    for feature in result.features:
        table.add_row(
            feature.feature,
            feature.table,
            feature.method,
            f"{feature.score:.4g}",
            f"{feature.threshold:.4g}",
            "[red]yes[/red]" if feature.is_drifted else "no",
        )
    console = Console()
    console.print(table)
    for note in result.skipped:
        console.print(f"skipped: {note}", highlight=False)
    verdict = "DRIFT" if result.is_drifted else "no drift"
    console.print(f"drift share {result.drift_share:.3f}: {verdict}", highlight=False)
    console.print(f"wrote {result.json_path}", highlight=False)
    if result.candidates_path is not None:
        console.print(f"candidates: {result.candidates_path}", highlight=False)
    if result.recorded_on is not None:
        console.print(f"recorded on {result.recorded_on}", highlight=False)
    if fail_on_drift and result.is_drifted:
        raise typer.Exit(EXIT_DRIFTED)


def _version_suffix(version: str) -> str:
    text = version.strip()
    return f"/{text}" if text.isdigit() else f"@{text}"
