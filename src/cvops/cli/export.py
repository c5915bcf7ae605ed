"""``cvops export`` and ``cvops package``: make model packages."""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from cvops.cli.app import app
from cvops.contracts.model_package import Family
from cvops.detection.coco import COCO80_NAMES
from cvops.errors import InvalidInputError


class ExportFormat(StrEnum):
    """What ``cvops export`` writes."""

    onnx = "onnx"
    int8 = "int8"
    fp16 = "fp16"
    engine = "engine"
    all = "all"


@app.command()
def export(
    checkpoint: str = typer.Argument(..., help="Ultralytics checkpoint (.pt) or model config (.yaml)."),
    out: Path = typer.Option(..., "--out", "-o", help="Package folder to write."),
    export_format: ExportFormat = typer.Option(ExportFormat.onnx, "--format", "-f", help="Package format."),
    imgsz: int = typer.Option(
        640, help="Input width in pixels (multiple of 32); also the height unless --height."
    ),
    height: int | None = typer.Option(
        None, help="Input height for cameras of one aspect ratio, e.g. 384 for 16:9 at 640 (multiple of 32)."
    ),
    calibration: Path | None = typer.Option(None, help="Folder of calibration images (int8)."),
    calibration_images: int = typer.Option(64, help="At most this many calibration images (int8)."),
) -> None:
    """Export a checkpoint to an ONNX (FP32, INT8, FP16) or TensorRT model package.

    ``--format all`` writes OUT/fp32 (with the checkpoint, for fine-tuning from the registry),
    OUT/int8 (with --calibration), OUT/fp16 and OUT/trt (where TensorRT and a GPU exist): the
    inputs of ``cvops registry register OUT/fp32 --variant ... --gate-data``.
    """
    from cvops.training.export import convert_fp16, export_onnx

    console = Console(stderr=True)
    if export_format is ExportFormat.all:
        _export_all(checkpoint, out, imgsz, height, calibration, calibration_images, console)
        return
    if export_format is ExportFormat.int8 and calibration is None:
        raise InvalidInputError("--calibration: int8 needs a folder of calibration images")
    if export_format is ExportFormat.engine:
        from cvops.detection.backends.tensorrt import import_tensorrt

        import_tensorrt()  # fail in one line now, not after the FP32 export
    with console.status(f"exporting {checkpoint} to {export_format.value}"):
        if export_format is ExportFormat.onnx:
            spec = export_onnx(checkpoint, out, imgsz, height=height)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fp32_dir = Path(tmp) / "fp32"
                export_onnx(checkpoint, fp32_dir, imgsz, height=height)
                if export_format is ExportFormat.int8:
                    from cvops.training.quantize import quantize_int8

                    assert calibration is not None
                    spec = quantize_int8(fp32_dir, calibration, out, calibration_images)
                elif export_format is ExportFormat.fp16:
                    spec = convert_fp16(fp32_dir, out)
                else:
                    from cvops.training.engine import build_engine

                    spec = build_engine(fp32_dir, out)
    size = f"{spec.input_width}x{spec.input_height}"
    console.print(f"wrote {out}: {spec.family} {spec.precision} {spec.format}, input {size}")


def _export_all(
    checkpoint: str,
    out: Path,
    imgsz: int,
    height: int | None,
    calibration: Path | None,
    calibration_images: int,
    console: Console,
) -> None:
    from cvops.training.variants import export_variants

    with console.status(f"exporting {checkpoint}") as status:
        exported = export_variants(
            checkpoint,
            out,
            imgsz,
            height,
            calibration,
            calibration_images,
            on_step=lambda name: status.update(f"exporting {checkpoint}: {name}"),
        )
    console.print(f"wrote {exported.reference} (reference)")
    for path in exported.variants.values():
        console.print(f"wrote {path}")
    for name, reason in exported.skipped.items():
        console.print(f"skipped {name}: {reason}")
    flags = " ".join(f"--variant {name}={path}" for name, path in exported.variants.items())
    console.print(f"next: cvops registry register {exported.reference} --name NAME {flags} --gate-data DATA")


@app.command()
def package(
    onnx_file: Path = typer.Argument(..., help="An existing ONNX detector or classifier."),
    out: Path = typer.Option(..., "--out", "-o", help="Package folder to write."),
    family: str = typer.Option(..., help="Model family: yolov8, yolo11, yolox, rtdetr or yolo-cls."),
    names: str = typer.Option("coco80", help="'coco80' or a text file with one class name per line."),
) -> None:
    """Wrap an existing ONNX model (e.g. a published YOLOX) into a model package."""
    from typing import get_args

    from cvops.detection.packaging import package_onnx

    if family not in get_args(Family):
        raise InvalidInputError(f"--family: expected one of {', '.join(get_args(Family))}, got {family!r}")
    if names == "coco80":
        class_names = COCO80_NAMES
    else:
        names_file = Path(names)
        if not names_file.is_file():
            raise InvalidInputError(f"--names: {names}: no such file")
        class_names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
    spec = package_onnx(onnx_file, out, family, class_names)  # type: ignore[arg-type]
    Console(stderr=True).print(f"wrote {out}: {spec.family}, {len(spec.class_names)} classes")
