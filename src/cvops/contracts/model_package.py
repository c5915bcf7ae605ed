"""The model package contract: ``model.onnx`` (or an engine) beside ``model.json``.

Every step that writes a model (export, quantization, training) writes this; every step that
reads one (detect, serve, evaluate) reads only this. The decoder and preprocessing are chosen
from these fields, never guessed from the graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cvops.errors import ModelPackageError

SPEC_FILE = "model.json"

Family = Literal["yolov8", "yolo11", "yolox", "rtdetr", "yolo-cls"]
Precision = Literal["fp32", "fp16", "int8"]
ModelFormat = Literal["onnx", "engine"]
ResizeMode = Literal["letterbox_center", "letterbox_top_left", "stretch", "center_crop"]

# Which task each family performs; the decoder registry is keyed by family.
TASK_OF_FAMILY: dict[str, Literal["detect", "classify"]] = {
    "yolov8": "detect",
    "yolo11": "detect",
    "yolox": "detect",
    "rtdetr": "detect",
    "yolo-cls": "classify",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessingSpec(_Frozen):
    """How an image becomes the model's input tensor (NCHW float32)."""

    resize: ResizeMode = "letterbox_center"
    pad_value: int = Field(114, ge=0, le=255)
    color: Literal["rgb", "bgr"] = "rgb"
    scale: float = Field(1.0 / 255.0, gt=0.0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class ModelPackageSpec(_Frozen):
    """The content of ``model.json``."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    family: Family
    format: ModelFormat = "onnx"
    file: str = "model.onnx"
    input_height: int = Field(ge=32, le=4096)
    input_width: int = Field(ge=32, le=4096)
    class_names: tuple[str, ...] = Field(min_length=1)
    preprocessing: PreprocessingSpec
    precision: Precision = "fp32"
    source: str = Field(description="Where the weights came from: a checkpoint path or a URL.")

    @model_validator(mode="after")
    def _check_file_name(self) -> ModelPackageSpec:
        if "/" in self.file or "\\" in self.file or self.file in ("", ".", ".."):
            raise ValueError(f"file: expected a bare file name in the package, got {self.file!r}")
        return self

    @property
    def task(self) -> Literal["detect", "classify"]:
        """Return what the model does, derived from its family."""
        return TASK_OF_FAMILY[self.family]


def read_model_package(package_dir: Path) -> ModelPackageSpec:
    """Read and validate ``model.json`` of a package folder.

    Raises:
        ModelPackageError: When the folder, ``model.json`` or the model file is missing, or
            the JSON breaks the contract.
    """
    spec_path = package_dir / SPEC_FILE
    if not spec_path.is_file():
        raise ModelPackageError(f"{package_dir}: expected a model package with {SPEC_FILE}")
    try:
        spec = ModelPackageSpec.model_validate_json(spec_path.read_bytes())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ModelPackageError(f"{spec_path}: {where}: {first['msg']}") from error
    if not (package_dir / spec.file).is_file():
        raise ModelPackageError(f"{package_dir}: model file {spec.file!r} named in {SPEC_FILE} is missing")
    return spec


def write_model_package_spec(package_dir: Path, spec: ModelPackageSpec) -> Path:
    """Write ``model.json`` into ``package_dir`` (created if needed) and return its path."""
    package_dir.mkdir(parents=True, exist_ok=True)
    path = package_dir / SPEC_FILE
    path.write_text(spec.model_dump_json(indent=2) + "\n")
    return path


# How each family's published weights expect their input; written into model.json on export.
_FAMILY_PREPROCESSING: dict[str, PreprocessingSpec] = {
    "yolov8": PreprocessingSpec(),
    "yolo11": PreprocessingSpec(),
    "rtdetr": PreprocessingSpec(resize="stretch"),
    "yolo-cls": PreprocessingSpec(resize="center_crop"),
    "yolox": PreprocessingSpec(resize="letterbox_top_left", color="bgr", scale=1.0),
}


def default_preprocessing(family: Family) -> PreprocessingSpec:
    """Return the preprocessing a family's reference implementation uses."""
    return _FAMILY_PREPROCESSING[family]
