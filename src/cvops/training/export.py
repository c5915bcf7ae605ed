"""Ultralytics checkpoint -> ONNX model package (FP32, FP16).

The graph has a fixed height and width and a dynamic batch, and is simplified with onnxslim:
a fixed spatial size lets the simplifier fold every shape computation, which is the fastest
graph for ONNX Runtime, while the dynamic batch keeps batching possible.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import onnx

from cvops.contracts.model_package import (
    Family,
    ModelPackageSpec,
    default_preprocessing,
    read_model_package,
    write_model_package_spec,
)
from cvops.errors import ExportError, InvalidInputError

logger = logging.getLogger(__name__)


def family_of(model: Any) -> Family:
    """Return the cvops family of a loaded ``ultralytics.YOLO`` / ``RTDETR`` model.

    Read from the model's own task and head type (what Ultralytics built), not its file name,
    except to tell YOLO11 from YOLOv8, which share one output format.
    """
    from ultralytics.nn.modules.head import RTDETRDecoder

    if model.task == "classify":
        return "yolo-cls"
    if model.task != "detect":
        raise ExportError(f"task: expected a 'detect' or 'classify' checkpoint, got {model.task!r}")
    if isinstance(model.model.model[-1], RTDETRDecoder):
        return "rtdetr"
    yaml_file = str(model.model.yaml.get("yaml_file", ""))
    return "yolo11" if "11" in Path(yaml_file).stem else "yolov8"


def load_ultralytics(checkpoint: str) -> Any:
    """Load an Ultralytics checkpoint (``.pt``) or build one from a config (``.yaml``).

    Raises:
        InvalidInputError: When the checkpoint file does not exist.
    """
    from ultralytics import RTDETR, YOLO

    path = Path(checkpoint)
    if path.suffix == ".pt" and not path.is_file():
        raise InvalidInputError(f"{checkpoint}: no such checkpoint file")
    loader = RTDETR if "rtdetr" in path.stem.lower() else YOLO
    return loader(checkpoint)


def export_onnx(
    checkpoint: str,
    out_dir: Path,
    imgsz: int = 640,
    name: str | None = None,
    opset: int | None = None,
    height: int | None = None,
) -> ModelPackageSpec:
    """Export an Ultralytics checkpoint to an FP32 ONNX model package.

    Args:
        checkpoint: A ``.pt`` checkpoint or a model ``.yaml`` (random weights).
        out_dir: Package folder to write (``model.onnx`` + ``model.json``).
        imgsz: Input width in pixels (and height, unless ``height`` is given), a multiple of 32.
        name: Package name; defaults to the checkpoint's stem.
        opset: ONNX opset; defaults to the one Ultralytics picks.
        height: Input height for a camera of fixed aspect ratio (e.g. 384 for 16:9 at 640): the
            letterbox pads less, so each frame costs fewer pixels. A multiple of 32.
    """
    width, height = imgsz, height or imgsz
    for label, value in (("imgsz", width), ("height", height)):
        if value % 32 or value < 32:
            raise InvalidInputError(f"{label}: expected a positive multiple of 32, got {value}")
    model = load_ultralytics(checkpoint)
    family = family_of(model)
    with tempfile.TemporaryDirectory() as tmp:
        # Ultralytics writes the export beside the checkpoint; point that at a scratch folder.
        model.model.pt_path = str(Path(tmp) / "model.pt")
        exported = model.export(
            format="onnx", imgsz=(height, width), dynamic=True, simplify=False, opset=opset, verbose=False
        )
        graph = onnx.load(exported)
    fixed = _fix_spatial_size(graph, height, width)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(fixed, str(out_dir / "model.onnx"))
    names = model.names
    spec = ModelPackageSpec(
        name=name or Path(checkpoint).stem,
        family=family,
        input_height=height,
        input_width=width,
        class_names=tuple(names[i] for i in sorted(names)),
        preprocessing=default_preprocessing(family),
        precision="fp32",
        source=str(Path(checkpoint).resolve()) if Path(checkpoint).exists() else checkpoint,
    )
    write_model_package_spec(out_dir, spec)
    logger.info("exported %s (%s) to %s", checkpoint, family, out_dir)
    return spec


def _fix_spatial_size(graph: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    """Pin the input's H and W (batch stays dynamic) and simplify with onnxslim."""
    import onnxslim

    dims = graph.graph.input[0].type.tensor_type.shape.dim
    for dim, value in ((dims[2], height), (dims[3], width)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    for output in graph.graph.output:
        # Output shapes other than the batch follow from the input; let the simplifier infer them.
        for dim in list(output.type.tensor_type.shape.dim)[1:]:
            if dim.dim_param:
                dim.ClearField("dim_param")
    slimmed: onnx.ModelProto = onnxslim.slim(graph)
    return slimmed


def convert_fp16(fp32_dir: Path, out_dir: Path) -> ModelPackageSpec:
    """Write an FP16 copy of an FP32 ONNX package (float32 inputs and outputs are kept).

    FP16 pays off on GPUs; on CPUs ONNX Runtime inserts casts and is usually not faster.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    spec = read_model_package(fp32_dir)
    if spec.precision != "fp32":
        raise InvalidInputError(f"{fp32_dir}: expected an fp32 package, got {spec.precision}")
    model = onnx.load(str(fp32_dir / spec.file))
    half = convert_float_to_float16(model, keep_io_types=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(half, str(out_dir / spec.file))
    fp16_spec = spec.model_copy(update={"precision": "fp16", "source": str(fp32_dir.resolve())})
    write_model_package_spec(out_dir, fp16_spec)
    return fp16_spec
