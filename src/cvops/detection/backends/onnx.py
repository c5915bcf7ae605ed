"""ONNX Runtime detector and classifier, for model packages in ONNX format.

Execution providers are picked from what this ONNX Runtime build offers: TensorRT, then CUDA,
then CPU. The three stages (preprocess, infer, postprocess) are public so benchmarks can time
each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from cvops.config import DetectorSettings
from cvops.contracts.model_package import ModelPackageSpec, read_model_package
from cvops.detection.decoders import make_decoder
from cvops.detection.postprocess import finalize
from cvops.detection.preprocess import LetterboxTransform, preprocess
from cvops.detection.types import Detections
from cvops.errors import ModelPackageError

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

# What ONNX Runtime raises for a file it cannot load as a model.
LOAD_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def pick_providers(available: Sequence[str]) -> list[str]:
    """Return the preferred execution providers among ``available``, best first."""
    return [name for name in PREFERRED_PROVIDERS if name in available] or ["CPUExecutionProvider"]


def create_session(model_path: Path, num_threads: int, device_id: int = 0) -> ort.InferenceSession:
    """Open an ONNX Runtime session with every graph optimization on.

    Args:
        model_path: The ``.onnx`` file.
        num_threads: Intra-op threads (0 lets ONNX Runtime choose).
        device_id: GPU ordinal for the TensorRT and CUDA providers.

    Raises:
        ModelPackageError: When ONNX Runtime cannot load the file.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    providers: list[str | tuple[str, dict[str, object]]] = [
        name if name == "CPUExecutionProvider" else (name, {"device_id": device_id})
        for name in pick_providers(ort.get_available_providers())
    ]
    try:
        return ort.InferenceSession(str(model_path), options, providers=providers)
    except LOAD_ERRORS as error:
        raise ModelPackageError(f"{model_path}: ONNX Runtime could not load it: {error}") from error


class _OnnxModel:
    """A package's session, its spec and its single input name."""

    def __init__(self, package_dir: Path, num_threads: int, task: str, device_id: int = 0) -> None:
        self.spec: ModelPackageSpec = read_model_package(package_dir)
        if self.spec.format != "onnx":
            raise ModelPackageError(f"{package_dir}: expected format 'onnx', got {self.spec.format!r}")
        if self.spec.task != task:
            raise ModelPackageError(
                f"{package_dir}: expected a {task} model, got family {self.spec.family!r}"
            )
        self.session = create_session(package_dir / self.spec.file, num_threads, device_id)
        model_input = self.session.get_inputs()[0]
        self.input_name: str = model_input.name
        # Graphs exported with a fixed batch (e.g. the published YOLOX) take that many images per run.
        batch_dim = model_input.shape[0]
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None

    @property
    def providers(self) -> list[str]:
        """Return the execution providers in use."""
        providers: list[str] = self.session.get_providers()
        return providers

    def run(self, batch: FloatArray) -> FloatArray:
        """Run the graph on one input batch and return its first output as float32."""
        step = self.fixed_batch
        if step is None or len(batch) == step:
            return np.asarray(self.session.run(None, {self.input_name: batch})[0], dtype=np.float32)
        if len(batch) % step:
            raise ModelPackageError(f"model takes batches of exactly {step} images, got {len(batch)}")
        outputs = [
            self.session.run(None, {self.input_name: batch[i : i + step]})[0]
            for i in range(0, len(batch), step)
        ]
        return np.asarray(np.concatenate(outputs), dtype=np.float32)


class OnnxDetector(_OnnxModel):
    """A detector running a model package through ONNX Runtime."""

    def __init__(self, package_dir: Path, settings: DetectorSettings | None = None) -> None:
        """Load the package.

        Args:
            package_dir: Folder with ``model.json`` and the ONNX file.
            settings: Thresholds and threads; defaults to :class:`DetectorSettings`.
        """
        self.settings = settings or DetectorSettings()
        super().__init__(package_dir, self.settings.num_threads, "detect", self.settings.device_id)
        spec = self.spec
        self.decoder = make_decoder(spec.family, len(spec.class_names), spec.input_height, spec.input_width)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        return self.spec.class_names

    def preprocess(self, images: Sequence[ImageArray]) -> tuple[FloatArray, list[LetterboxTransform]]:
        """Resize and convert BGR images into the model's input batch."""
        return preprocess(images, self.spec.input_height, self.spec.input_width, self.spec.preprocessing)

    def postprocess(
        self,
        output: FloatArray,
        transforms: Sequence[LetterboxTransform],
        settings: DetectorSettings | None = None,
    ) -> list[Detections]:
        """Decode, suppress and map raw output back to original-image pixels."""
        chosen = settings or self.settings
        candidates = self.decoder(output, chosen.score_threshold)
        return finalize(candidates, transforms, self.class_names, chosen, self.decoder.needs_nms)

    def detect(
        self, images: Sequence[ImageArray], settings: DetectorSettings | None = None
    ) -> list[Detections]:
        """Detect objects in a batch of BGR images, each (H, W, 3) uint8."""
        if not images:
            return []
        batch, transforms = self.preprocess(images)
        return self.postprocess(self.run(batch), transforms, settings)


class OnnxClassifier(_OnnxModel):
    """An image classifier running a ``yolo-cls`` package through ONNX Runtime."""

    def __init__(self, package_dir: Path, num_threads: int = 0) -> None:
        """Load the package from ``package_dir`` with ``num_threads`` intra-op threads."""
        super().__init__(package_dir, num_threads, "classify")

    @property
    def class_names(self) -> tuple[str, ...]:
        """Return the class names, indexed by class id."""
        return self.spec.class_names

    def classify(self, images: Sequence[ImageArray]) -> FloatArray:
        """Return class probabilities, shape (N, C), for BGR images (H, W, 3) uint8."""
        if not images:
            return np.zeros((0, len(self.class_names)), np.float32)
        batch, _ = preprocess(images, self.spec.input_height, self.spec.input_width, self.spec.preprocessing)
        return self.run(batch)
