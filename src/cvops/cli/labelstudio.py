"""``cvops labelstudio``: a local Label Studio server, frames in, annotations out as dataset versions."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cvops.cli.app import app, state_dir
from cvops.errors import AnnotationServerError, InvalidInputError

if TYPE_CHECKING:
    from cvops.annotation.connection import LabelStudioConnection
    from cvops.annotation.push import Frame

labelstudio_app = typer.Typer(
    help="Run Label Studio locally, push frames with pre-annotations, sync annotations into datasets.",
    no_args_is_help=True,
)
app.add_typer(labelstudio_app, name="labelstudio")

BASE_DIR_HELP = "Server folder (state file, data, log); default: <state dir>/labelstudio (CVOPS_STATE_DIR)."


class SyncFormat(StrEnum):
    """What ``cvops labelstudio sync`` writes."""

    yolo = "yolo"
    coco = "coco"


def _base_dir(base_dir: Path | None) -> Path:
    return base_dir if base_dir is not None else state_dir() / "labelstudio"


def _default_venv() -> Path:
    return Path(os.environ.get("CVOPS_LABELSTUDIO_VENV", ".venv-labelstudio"))


def _connection(
    base_dir: Path | None, url: str | None, token: str | None, document_root: Path | None
) -> LabelStudioConnection:
    from cvops.annotation.connection import LabelStudioConnection
    from cvops.annotation.server import read_server_info

    if url is not None or token is not None:
        if url is None or token is None or document_root is None:
            raise InvalidInputError("--url, --token and --document-root: expected all three or none")
        return LabelStudioConnection(url, token, document_root)
    folder = _base_dir(base_dir)
    info = read_server_info(folder)
    if info is None:
        raise AnnotationServerError(f"{folder}: no Label Studio started here; run `cvops labelstudio up`")
    return LabelStudioConnection.from_server(info)


@labelstudio_app.command("up")
def up(
    venv: Path | None = typer.Option(
        None, help="Venv of the server (`make labelstudio`); CVOPS_LABELSTUDIO_VENV."
    ),
    base_dir: Path | None = typer.Option(None, help=BASE_DIR_HELP),
    document_root: Path | None = typer.Option(None, help="Folder Label Studio may serve images from."),
    port: int | None = typer.Option(None, help="TCP port on 127.0.0.1; a free one by default."),
    timeout_s: float = typer.Option(180.0, "--timeout-s", help="Longest wait for the server to answer."),
) -> None:
    """Start Label Studio on 127.0.0.1 (or reuse the running one) and print its URL."""
    from cvops.annotation.server import STATE_FILE, check_port, start_server

    folder = _base_dir(base_dir)
    info = start_server(venv or _default_venv(), folder, document_root, check_port(port), timeout_s)
    typer.echo(
        f"label studio at {info.url} (pid {info.pid}); login and token in {folder / STATE_FILE}", err=True
    )
    typer.echo(info.url)


@labelstudio_app.command("down")
def down(base_dir: Path | None = typer.Option(None, help=BASE_DIR_HELP)) -> None:
    """Stop the local Label Studio (by its PID)."""
    from cvops.annotation.server import stop_server

    info = stop_server(_base_dir(base_dir))
    typer.echo("stopped" if info is not None else "not started")


@labelstudio_app.command("status")
def status(base_dir: Path | None = typer.Option(None, help=BASE_DIR_HELP)) -> None:
    """Show whether the local Label Studio runs, its URL and PID; exit 1 when it does not run."""
    from cvops.annotation.server import is_running, read_server_info

    info = read_server_info(_base_dir(base_dir))
    if info is None:
        typer.echo("not started")
        raise typer.Exit(1)
    running = is_running(info)
    typer.echo(f"{'running' if running else 'stopped'} {info.url} pid={info.pid} login={info.email}")
    if not running:
        raise typer.Exit(1)


@labelstudio_app.command("push")
def push(
    detections: Path = typer.Argument(..., help="JSONL of ImageDetections (`cvops detect` output)."),
    project: str = typer.Option(..., help="Project title (created when missing)."),
    names: str = typer.Option(
        ..., help="Class names in id order: comma-separated, or a file with one per line."
    ),
    model_version: str = typer.Option(..., help="The model that made the detections."),
    base_dir: Path | None = typer.Option(None, help=BASE_DIR_HELP),
    url: str | None = typer.Option(None, help="Another server's URL (with --token, --document-root)."),
    token: str | None = typer.Option(None, envvar="CVOPS_LABELSTUDIO_TOKEN", help="Its API token."),
    document_root: Path | None = typer.Option(None, help="Its local-files document root."),
) -> None:
    """Import frames with the model's detections as pre-annotations."""
    from cvops.annotation.push import push_frames

    frames = _read_detections(detections)
    result = push_frames(
        _connection(base_dir, url, token, document_root), project, _parse_names(names), frames, model_version
    )
    typer.echo(
        f"project {result.project_id}: imported {result.imported_count} tasks "
        f"({result.prediction_count} boxes), skipped {result.skipped_count} already there"
    )


@labelstudio_app.command("simulate")
def simulate(
    ground_truth: Path = typer.Option(
        ..., help="Dataset with the true boxes (data.yaml, COCO JSON or folder)."
    ),
    project: str = typer.Option(..., help="Project title."),
    limit: int | None = typer.Option(None, help="Annotate at most this many tasks."),
    base_dir: Path | None = typer.Option(None, help=BASE_DIR_HELP),
    url: str | None = typer.Option(None, help="Another server's URL (with --token, --document-root)."),
    token: str | None = typer.Option(None, envvar="CVOPS_LABELSTUDIO_TOKEN", help="Its API token."),
    document_root: Path | None = typer.Option(None, help="Its local-files document root."),
) -> None:
    """Complete open tasks from ground truth with the SimulatedAnnotator (demos and tests)."""
    from cvops.annotation.simulate import simulate_annotations
    from cvops.data.formats import read_dataset

    dataset = read_dataset(ground_truth)
    result = simulate_annotations(_connection(base_dir, url, token, document_root), project, dataset, limit)
    typer.echo(
        f"simulated annotator: {result.annotated_count} tasks annotated ({result.box_count} boxes), "
        f"{result.already_annotated_count} already annotated, {result.unknown_count} not in the ground truth"
    )


@labelstudio_app.command("sync")
def sync(
    project: str = typer.Option(..., help="Project title."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the dataset versions and the sync cursor."),
    dataset_format: SyncFormat = typer.Option(SyncFormat.yolo, "--format", help="Dataset format to write."),
    min_completed: int = typer.Option(0, help="Wait until this many tasks are annotated."),
    timeout_s: float = typer.Option(0.0, "--timeout-s", help="Longest wait for --min-completed."),
    base_dir: Path | None = typer.Option(None, help=BASE_DIR_HELP),
    url: str | None = typer.Option(None, help="Another server's URL (with --token, --document-root)."),
    token: str | None = typer.Option(None, envvar="CVOPS_LABELSTUDIO_TOKEN", help="Its API token."),
    document_root: Path | None = typer.Option(None, help="Its local-files document root."),
) -> None:
    """Pull completed annotations into a dataset version; print its folder."""
    from cvops.annotation.sync import sync_annotations

    result = sync_annotations(
        _connection(base_dir, url, token, document_root),
        project,
        out,
        dataset_format=dataset_format.value,
        min_completed=min_completed,
        timeout_s=timeout_s,
    )
    what = "new version" if result.is_new else "no change, version"
    typer.echo(f"{what} {result.version_id}: {result.image_count} images, {result.box_count} boxes", err=True)
    typer.echo(str(result.version_dir))


def _parse_names(names: str) -> list[str]:
    path = Path(names)
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [name.strip() for name in names.split(",") if name.strip()]


def _read_detections(path: Path) -> list[Frame]:
    from pydantic import ValidationError

    from cvops.contracts.detections import ImageDetections

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as error:
        raise InvalidInputError(f"{path}: no such file") from error
    frames: list[Frame] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = ImageDetections.model_validate_json(line)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(line)"
            raise InvalidInputError(f"{path}:{number}: {where}: {first['msg']}") from error
        frames.append((Path(record.source), record.detections))
    return frames
