"""TensorRT engine runtime (NVIDIA GPUs). Imports TensorRT only when an engine is opened."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvops.config import DetectorSettings
from cvops.contracts.model_package import read_model_package
from cvops.detection.decoders import make_decoder
from cvops.detection.postprocess import finalize
from cvops.detection.preprocess import preprocess
from cvops.detection.types import Detections
from cvops.errors import BackendUnavailableError, ModelPackageError

ImageArray = npt.NDArray[np.uint8]

INSTALL_HINT = "install cvops[tensorrt] on a machine with an NVIDIA GPU and CUDA"


def import_tensorrt() -> Any:
    """Return the ``tensorrt`` module and CUDA-enabled torch, or raise a one-line error."""
    try:
        import tensorrt
        import torch
    except ImportError as error:
        raise BackendUnavailableError(f"TensorRT is not installed: {INSTALL_HINT}") from error
    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"TensorRT needs a CUDA GPU and none is visible: {INSTALL_HINT}")
    return tensorrt


class TensorRTDetector:
    """A detector running a serialized TensorRT engine (``format: engine`` packages).

    Device buffers are torch CUDA tensors, so no separate CUDA binding is needed.
    """

    def __init__(self, package_dir: Path, settings: DetectorSettings | None = None) -> None:
        """Deserialize the package's engine onto the current CUDA device."""
        trt = import_tensorrt()
        import torch

        self.settings = settings or DetectorSettings()
        self.spec = read_model_package(package_dir)
        if self.spec.format != "engine" or self.spec.task != "detect":
            raise ModelPackageError(
                f"{package_dir}: expected a detector engine package, got {self.spec.format}"
            )
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine((package_dir / self.spec.file).read_bytes())
        if self.engine is None:
            raise ModelPackageError(f"{package_dir / self.spec.file}: TensorRT could not deserialize it")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.decoder = make_decoder(
            self.spec.family, len(self.spec.class_names), self.spec.input_height, self.spec.input_width
        )
        self._torch = torch
        self._stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        return self.spec.class_names

    def detect(
        self, images: Sequence[ImageArray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect objects in BGR images, each (H, W, 3) uint8."""
        if not images:
            return []
        torch = self._torch
        batch, transforms = preprocess(
            images, self.spec.input_height, self.spec.input_width, self.spec.preprocessing
        )
        device_input = torch.from_numpy(batch).cuda()
        self.context.set_input_shape(self.input_name, tuple(device_input.shape))
        device_output = torch.empty(
            tuple(self.context.get_tensor_shape(self.output_name)), dtype=torch.float32, device="cuda"
        )
        self.context.set_tensor_address(self.input_name, device_input.data_ptr())
        self.context.set_tensor_address(self.output_name, device_output.data_ptr())
        self.context.execute_async_v3(self._stream.cuda_stream)
        self._stream.synchronize()
        output = device_output.cpu().numpy()
        chosen = settings or self.settings
        candidates = self.decoder(output, chosen.score_threshold)
        return finalize(candidates, transforms, self.class_names, chosen, self.decoder.needs_nms)
