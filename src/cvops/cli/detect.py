"""``cvops detect``: run a model package on images and write JSON and annotated images."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cvops.annotate import draw_detections
from cvops.cli.app import app
from cvops.config import DetectorSettings
from cvops.contracts.detections import ImageDetections
from cvops.contracts.model_package import read_model_package
from cvops.detection.loader import load_detector
from cvops.images import list_images, read_image, write_image


@app.command()
def detect(
    paths: list[Path] = typer.Argument(..., help="Image files or folders of images."),
    model: Path = typer.Option(..., "--model", "-m", help="Model package folder (model.json + model)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write detections.jsonl and annotated images here; else print JSON lines."
    ),
    score_threshold: float = typer.Option(0.25, help="Drop boxes scoring at or below this."),
    iou_threshold: float = typer.Option(0.7, help="NMS IoU threshold (same-class boxes)."),
    threads: int = typer.Option(0, help="Runtime CPU threads (0: runtime default)."),
) -> None:
    """Detect objects in images with a model package."""
    spec = read_model_package(model)
    detector = load_detector(model, DetectorSettings(score_threshold, iou_threshold, num_threads=threads))
    files = list_images(paths)
    records: list[ImageDetections] = []
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]detect"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=len(files) < 2,
    ) as progress:  # fmt: skip
        task = progress.add_task("detect", total=len(files))
        for path in files:
            image = read_image(path)
            detections = detector.detect([image])[0]
            record = ImageDetections.from_detections(
                str(path), image.shape[1], image.shape[0], spec.name, detections
            )
            records.append(record)
            if out is None:
                typer.echo(record.model_dump_json())
            else:
                write_image(out / "annotated" / f"{path.stem}.jpg", draw_detections(image, detections))
            progress.advance(task)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "detections.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
        table = Table("image", "detections", "classes")
        for r in records:
            names = sorted({d.class_name for d in r.detections})
            table.add_row(Path(r.source).name, str(len(r.detections)), ", ".join(names))
        console.print(table)
        console.print(f"wrote {out / 'detections.jsonl'} and {out / 'annotated'}/")
