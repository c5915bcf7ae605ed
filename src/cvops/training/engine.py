"""ONNX package -> TensorRT engine package (FP16 by default), where TensorRT is installed."""

from __future__ import annotations

from pathlib import Path

from cvops.contracts.model_package import ModelPackageSpec, read_model_package, write_model_package_spec
from cvops.detection.backends.tensorrt import import_tensorrt
from cvops.errors import ExportError

ENGINE_FILE = "model.engine"


def build_engine(onnx_dir: Path, out_dir: Path, fp16: bool = True, max_batch: int = 8) -> ModelPackageSpec:
    """Build a TensorRT engine for batch 1..``max_batch`` from an FP32 ONNX package.

    Raises:
        BackendUnavailableError: Where TensorRT or a CUDA GPU is missing.
        ExportError: When TensorRT cannot parse the graph or build the engine.
    """
    trt = import_tensorrt()
    spec = read_model_package(onnx_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse((onnx_dir / spec.file).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_dir / spec.file}: TensorRT could not parse it: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    shape = (3, spec.input_height, spec.input_width)
    profile.set_shape(name, (1, *shape), (max(1, max_batch // 2), *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_dir}: TensorRT failed to build an engine")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ENGINE_FILE).write_bytes(bytes(serialized))
    engine_spec = spec.model_copy(
        update={
            "format": "engine",
            "file": ENGINE_FILE,
            "precision": "fp16" if fp16 else "fp32",
            "source": str(onnx_dir.resolve()),
        }
    )
    write_model_package_spec(out_dir, engine_spec)
    return engine_spec
