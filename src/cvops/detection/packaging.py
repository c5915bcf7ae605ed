"""Wrap an existing ONNX detector (e.g. a published YOLOX) into a model package."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from cvops.contracts.model_package import (
    Family,
    ModelPackageSpec,
    Precision,
    default_preprocessing,
    write_model_package_spec,
)
from cvops.errors import ModelPackageError


def package_onnx(
    onnx_path: Path,
    out_dir: Path,
    family: Family,
    class_names: tuple[str, ...],
    name: str | None = None,
    precision: Precision = "fp32",
) -> ModelPackageSpec:
    """Copy an ONNX file into a package folder and write its ``model.json``.

    The input size is read from the graph's first input, which must be (N, 3, H, W) with
    fixed H and W; preprocessing is the family's reference preprocessing.

    Raises:
        ModelPackageError: When the file is not ONNX or its input size is not fixed.
    """
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except OSError as error:
        raise ModelPackageError(f"{onnx_path}: cannot read: {error.strerror}") from error
    except DecodeError as error:
        raise ModelPackageError(f"{onnx_path}: not an ONNX file (protobuf decode failed)") from error
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or dims[2] <= 0 or dims[3] <= 0:
        raise ModelPackageError(f"{onnx_path}: expected input (N, 3, H, W) with fixed H, W, got {dims}")
    spec = ModelPackageSpec(
        name=name or onnx_path.stem,
        family=family,
        input_height=dims[2],
        input_width=dims[3],
        class_names=class_names,
        preprocessing=default_preprocessing(family),
        precision=precision,
        source=str(onnx_path.resolve()),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out_dir / spec.file)
    write_model_package_spec(out_dir, spec)
    return spec
