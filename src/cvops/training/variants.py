"""Export every deployable variant of a checkpoint in one call: FP32, INT8, FP16 and TensorRT.

The FP32 package is the reference the export gate scores the others against
(:func:`cvops.evaluation.release.gate_export_variants`). It also carries the checkpoint it was
exported from (``checkpoint.pt``), so a registered model can be fine-tuned again from the
registry (``cvops train --model models:/NAME@champion``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cvops.errors import BackendUnavailableError, InvalidInputError

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
REFERENCE_VARIANT = "fp32"
VARIANT_NAMES = ("int8", "fp16", "trt")


@dataclass(frozen=True, slots=True)
class ExportedVariants:
    """The packages one export wrote.

    Attributes:
        reference: The FP32 package folder (``OUT/fp32``).
        variants: The other packages by name (``int8``, ``fp16``, ``trt``): the gate's candidates.
        skipped: Variants not written, by name, with the reason (no calibration images, no GPU).
    """

    reference: Path
    variants: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def export_variants(
    checkpoint: str,
    out_dir: Path,
    imgsz: int = 640,
    height: int | None = None,
    calibration_dir: Path | None = None,
    calibration_images: int = 64,
    on_step: Callable[[str], None] | None = None,
) -> ExportedVariants:
    """Export ``checkpoint`` to ``OUT/fp32`` and, from it, ``OUT/int8``, ``OUT/fp16`` and ``OUT/trt``.

    INT8 needs ``calibration_dir``; TensorRT needs the ``cvops[trt]`` extra and a CUDA GPU.
    A variant that cannot be built here is skipped with its reason, never silently dropped.

    Args:
        checkpoint: Ultralytics ``.pt`` checkpoint (or a ``.yaml`` config: random weights).
        out_dir: Folder for one package per variant.
        imgsz: Input width in pixels (and height unless ``height``), a multiple of 32.
        height: Input height for cameras of one aspect ratio, a multiple of 32.
        calibration_dir: Folder of calibration images for INT8.
        calibration_images: At most this many calibration images.
        on_step: Called with each variant's name before it is built (progress display).

    Raises:
        InvalidInputError: A missing checkpoint or calibration folder.
    """
    from cvops.detection.backends.tensorrt import import_tensorrt
    from cvops.training.export import convert_fp16, export_onnx
    from cvops.training.quantize import quantize_int8

    if checkpoint.endswith(".pt") and not Path(checkpoint).is_file():
        raise InvalidInputError(f"checkpoint: {checkpoint}: no such file")
    if calibration_dir is not None and not calibration_dir.is_dir():
        raise InvalidInputError(f"calibration: {calibration_dir}: no such folder")
    step = on_step or (lambda _name: None)
    reference = out_dir / REFERENCE_VARIANT
    step(REFERENCE_VARIANT)
    export_onnx(checkpoint, reference, imgsz, height=height)
    if checkpoint.endswith(".pt"):
        shutil.copy2(checkpoint, reference / CHECKPOINT_FILE)
    result = ExportedVariants(reference)
    if calibration_dir is None:
        result.skipped["int8"] = "no calibration images given"
    else:
        step("int8")
        quantize_int8(reference, calibration_dir, out_dir / "int8", calibration_images)
        result.variants["int8"] = out_dir / "int8"
    step("fp16")
    convert_fp16(reference, out_dir / "fp16")
    result.variants["fp16"] = out_dir / "fp16"
    try:
        import_tensorrt()
    except BackendUnavailableError as error:
        result.skipped["trt"] = str(error)
    else:
        from cvops.training.engine import build_engine

        step("trt")
        build_engine(reference, out_dir / "trt")
        result.variants["trt"] = out_dir / "trt"
    for name, reason in result.skipped.items():
        logger.info("export variant %s skipped: %s", name, reason)
    return result


def package_checkpoint(package_dir: Path) -> Path:
    """Return the checkpoint a package was exported from, for fine-tuning it again.

    Raises:
        InvalidInputError: The package has no ``checkpoint.pt`` (e.g. a wrapped published ONNX).
    """
    path = package_dir / CHECKPOINT_FILE
    if not path.is_file():
        raise InvalidInputError(
            f"{package_dir}: the package has no {CHECKPOINT_FILE} to fine-tune from "
            "(only packages made by `cvops export --format all` carry their weights)"
        )
    return path
