"""``cvops dataset``: pull, version and convert detection datasets."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cvops.cli.app import app
from cvops.data.formats import (
    DetectionDataset,
    merge_datasets,
    read_coco,
    read_dataset,
    read_yolo,
    write_coco,
    write_yolo,
)
from cvops.data.versions import MANIFEST_NAME
from cvops.errors import InvalidInputError

dataset_app = typer.Typer(help="Pull, version and convert detection datasets.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


class SourceFormat(StrEnum):
    """What ``cvops dataset convert`` reads."""

    labelstudio = "labelstudio"
    coco = "coco"
    yolo = "yolo"


class TargetFormat(StrEnum):
    """What ``cvops dataset convert`` writes."""

    yolo = "yolo"
    coco = "coco"


@dataset_app.command("pull")
def pull(
    uri: str = typer.Argument(
        ..., help="Folder, archive, http(s):// URL of a .zip/.tar.gz, or s3://bucket/prefix."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="New or empty folder to pull into."),
    timeout_s: float = typer.Option(60.0, "--timeout-s", help="Network timeout per read, in seconds."),
) -> None:
    """Fetch a dataset, check it, and print the folder that holds it."""
    from cvops.data.fetch import pull_dataset

    console = Console(stderr=True)
    with console.status(f"pulling {uri}"):
        root = pull_dataset(uri, out, timeout_s=timeout_s)
    _print_summary(console, read_dataset(root), f"pulled {uri}")
    typer.echo(str(root))


@dataset_app.command("version")
def version(
    directory: Path = typer.Argument(..., help="Dataset folder (data.yaml or COCO JSON) or dataset file."),
    manifest: Path | None = typer.Option(
        None, help=f"Where to write the manifest; {MANIFEST_NAME} in the dataset folder by default."
    ),
) -> None:
    """Hash a dataset, write its manifest and print its content-addressed version id."""
    from cvops.data.versions import dataset_manifest, write_manifest

    console = Console(stderr=True)
    root = directory if directory.is_dir() else directory.parent
    dataset = read_dataset(directory)
    with console.status("hashing images and labels"):
        result = dataset_manifest(dataset, root)
    target = manifest if manifest is not None else root / MANIFEST_NAME
    write_manifest(result, target)
    _print_summary(console, dataset, f"version {result.version_id}, manifest {target}")
    typer.echo(result.version_id)


@dataset_app.command("convert")
def convert(
    inputs: list[Path] = typer.Argument(
        ..., help="Label Studio export JSON, COCO JSON file(s), or a YOLO data.yaml / dataset folder."
    ),
    source_format: SourceFormat = typer.Option(..., "--from", help="Format of the input."),
    target_format: TargetFormat = typer.Option(..., "--to", help="Format to write."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write."),
    images_root: Path | None = typer.Option(
        None, help="Label Studio: folder holding the task images (searched by file name)."
    ),
    names: str | None = typer.Option(
        None, help="Label Studio: class names in id order, comma-separated or a file with one per line."
    ),
    split: str = typer.Option("train", help="Label Studio: split of every image."),
    split_fractions: str | None = typer.Option(
        None, help="Re-split by content hash, e.g. 'train=0.8,val=0.2' (deterministic, see --seed)."
    ),
    seed: int = typer.Option(0, help="Seed of --split-fractions."),
) -> None:
    """Convert a dataset between Label Studio, COCO and YOLO files."""
    console = Console(stderr=True)
    dataset = _read(source_format, inputs, images_root, names, split)
    if split_fractions is not None:
        from cvops.data.versions import split_dataset

        dataset = split_dataset(dataset, _parse_fractions(split_fractions), seed)
    with console.status(f"writing {target_format.value} to {out}"):
        if target_format is TargetFormat.yolo:
            written = [write_yolo(dataset, out)]
        else:
            written = write_coco(dataset, out)
    _print_summary(console, dataset, f"wrote {', '.join(str(p) for p in written)}")


def _read(
    source_format: SourceFormat, inputs: list[Path], images_root: Path | None, names: str | None, split: str
) -> DetectionDataset:
    if source_format is SourceFormat.labelstudio:
        from cvops.data.label_studio import read_label_studio

        if images_root is None:
            raise InvalidInputError("--images-root: a Label Studio export needs the folder of its images")
        if len(inputs) != 1:
            raise InvalidInputError(f"expected one Label Studio export file, got {len(inputs)}")
        return read_label_studio(inputs[0], images_root, _parse_names(names), split)
    if source_format is SourceFormat.coco:
        return merge_datasets([read_coco(p) if p.is_file() else read_dataset(p) for p in inputs])
    if len(inputs) != 1:
        raise InvalidInputError(f"expected one YOLO data.yaml or dataset folder, got {len(inputs)}")
    return read_yolo(inputs[0]) if inputs[0].is_file() else read_dataset(inputs[0])


def _parse_names(names: str | None) -> list[str] | None:
    if names is None:
        return None
    path = Path(names)
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [name.strip() for name in names.split(",") if name.strip()]


def _parse_fractions(text: str) -> dict[str, float]:
    fractions: dict[str, float] = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        try:
            fractions[name.strip()] = float(share)
        except ValueError as error:
            raise InvalidInputError(
                f"--split-fractions: expected 'name=share,...' such as 'train=0.8,val=0.2', got {text!r}"
            ) from error
    return fractions


def _print_summary(console: Console, dataset: DetectionDataset, title: str) -> None:
    console.print(title, highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("boxes", justify="right")
    for name in dataset.splits:
        part = dataset.select_split(name)
        table.add_row(name, str(len(part)), str(part.box_count))
    table.add_row("all", str(len(dataset)), str(dataset.box_count), style="bold")
    console.print(table)
    console.print(f"{len(dataset.class_names)} classes")
