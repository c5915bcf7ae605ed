"""Appearance re-identification: one L2-normalized embedding per box, compared by cosine.

:class:`OnnxEmbedder` runs a person re-id network (e.g. OSNet) through ONNX Runtime. Published
re-id graphs are often exported with a fixed batch of 1; the embedder then rewrites an in-memory
copy with a dynamic batch dimension, keeps it only if a batch of two gives the same embeddings as
two single runs, and otherwise runs the original graph one crop at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from cvops.detection.backends.onnx import LOAD_ERRORS, pick_providers
from cvops.errors import InvalidInputError, ModelPackageError

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]

# ImageNet statistics in RGB order, as the torchreid models were trained with.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# A batch-of-two run may differ from two single runs by float reordering only.
_BATCH_PARITY_ATOL = 1e-4
_RUN_ERRORS = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException)


class Embedder(Protocol):
    """Turns the boxes of one image into appearance embeddings."""

    def embed(self, image_bgr: ImageArray, xyxy: FloatArray) -> FloatArray:
        """Return one L2-normalized embedding per box.

        Args:
            image_bgr: The image, shape (H, W, 3), uint8, BGR.
            xyxy: Boxes, shape (N, 4), float32, pixels of ``image_bgr``; N may be 0.

        Returns:
            Embeddings, shape (N, D), float32, each row of unit length.
        """
        ...


def cosine_distance(a: FloatArray, b: FloatArray) -> FloatArray:
    """Return ``1 - cosine similarity`` between every row of ``a`` and every row of ``b``.

    Args:
        a: Vectors, shape (N, D).
        b: Vectors, shape (M, D).

    Returns:
        Distances, shape (N, M), float32 in [0, 2]; a zero vector is at distance 1 from anything.

    Raises:
        InvalidInputError: When the inputs are not 2-D or their widths differ.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InvalidInputError(f"expected shapes (N, D) and (M, D), got {a.shape} and {b.shape}")
    distance = 1.0 - _normalize_rows(a.astype(np.float32)) @ _normalize_rows(b.astype(np.float32)).T
    return np.clip(distance, 0.0, 2.0).astype(np.float32)


def crop_boxes(image_shape: tuple[int, ...], xyxy: FloatArray) -> npt.NDArray[np.int64]:
    """Return the integer pixel window of each box, clipped to the image and at least 1x1.

    A box of zero area after clipping (degenerate, or wholly outside the image) becomes the one
    pixel of the image nearest to it, so every box gets a real, finite embedding. A zero vector
    would instead sit at cosine distance 1 from everything and never match anyone.

    Args:
        image_shape: ``(H, W, ...)`` of the image.
        xyxy: Boxes, shape (N, 4), float pixels.

    Returns:
        Windows, shape (N, 4), int64 ``x1, y1, x2, y2`` with ``0 <= x1 < x2 <= W`` (same for y).
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    x1 = np.clip(np.floor(xyxy[:, 0]), 0, width - 1).astype(np.int64)
    y1 = np.clip(np.floor(xyxy[:, 1]), 0, height - 1).astype(np.int64)
    x2 = np.clip(np.ceil(xyxy[:, 2]), x1 + 1, width).astype(np.int64)
    y2 = np.clip(np.ceil(xyxy[:, 3]), y1 + 1, height).astype(np.int64)
    return np.stack([x1, y1, x2, y2], axis=1)


class OnnxEmbedder:
    """A re-id network in ONNX format: crop, resize, normalize, embed, L2-normalize.

    Preprocessing follows torchreid: each box is cropped (see :func:`crop_boxes`), resized to the
    network's input size (bilinear), converted BGR -> RGB, scaled to [0, 1], normalized with the
    ImageNet mean and std and laid out NCHW.

    Attributes:
        input_height: Network input height in pixels (256 for OSNet).
        input_width: Network input width in pixels (128 for OSNet).
        dim: Embedding width D.
        is_batched: Whether crops run ``batch_size`` at a time (False: one per run).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        num_threads: int = 2,
        batch_size: int = 16,
        providers: Sequence[str] | None = None,
    ) -> None:
        """Load the network.

        Args:
            model_path: The ``.onnx`` file; one input (1 or N, 3, H, W), one output (1 or N, D).
            num_threads: ONNX Runtime intra-op threads (0 lets it choose).
            batch_size: Crops per run when the graph takes a dynamic batch.
            providers: Execution providers, best first; None picks TensorRT, CUDA, CPU as available.

        Raises:
            ModelPackageError: When the file is missing or is not a model ONNX Runtime can run.
            InvalidInputError: When ``num_threads`` or ``batch_size`` is out of range.
        """
        if num_threads < 0:
            raise InvalidInputError(f"num_threads: expected >= 0, got {num_threads}")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size: expected >= 1, got {batch_size}")
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        chosen = list(providers) if providers is not None else pick_providers(ort.get_available_providers())
        try:
            model = onnx.load_model_from_string(self.model_path.read_bytes())
        except OSError as error:
            raise ModelPackageError(f"{self.model_path}: cannot read the re-id model: {error}") from error
        except DecodeError as error:
            raise ModelPackageError(f"{self.model_path}: not an ONNX model: {error}") from error
        self._session = _open_session(model, self.model_path, num_threads, chosen)
        model_input, model_output = self._session.get_inputs()[0], self._session.get_outputs()[0]
        shape = model_input.shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]) or shape[1] != 3:
            raise ModelPackageError(f"{self.model_path}: expected input (N, 3, H, W), got {shape}")
        self._input_name: str = model_input.name
        self.input_height, self.input_width = int(shape[2]), int(shape[3])
        if len(model_output.shape) != 2 or not isinstance(model_output.shape[1], int):
            raise ModelPackageError(f"{self.model_path}: expected output (N, D), got {model_output.shape}")
        self.dim = int(model_output.shape[1])
        self.is_batched = not isinstance(shape[0], int)
        if isinstance(shape[0], int) and shape[0] != 1:
            raise ModelPackageError(f"{self.model_path}: expected batch 1 or a free batch, got {shape[0]}")
        if shape[0] == 1:
            dynamic = _with_dynamic_batch(model)
            if dynamic is not None:
                session = _open_session(dynamic, self.model_path, num_threads, chosen)
                if self._runs_batches_alike(session):
                    self._session, self.is_batched = session, True
        std = np.asarray(IMAGENET_STD_RGB, np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (np.asarray(IMAGENET_MEAN_RGB, np.float32) / std).astype(np.float32)

    @property
    def providers(self) -> list[str]:
        """Return the execution providers in use."""
        names: list[str] = self._session.get_providers()
        return names

    def preprocess(self, image_bgr: ImageArray, xyxy: FloatArray) -> FloatArray:
        """Return the network input for the boxes, shape (N, 3, H, W), float32 (see the class)."""
        _check_inputs(image_bgr, xyxy)
        windows = crop_boxes(image_bgr.shape, xyxy)
        crops = np.empty((len(windows), self.input_height, self.input_width, 3), np.uint8)
        size = (self.input_width, self.input_height)
        for i, (x1, y1, x2, y2) in enumerate(windows.tolist()):
            crops[i] = cv2.resize(image_bgr[y1:y2, x1:x2], size, interpolation=cv2.INTER_LINEAR)
        batch = np.empty((len(windows), 3, self.input_height, self.input_width), np.float32)
        for channel in range(3):  # RGB plane c is BGR channel 2 - c; written in place, NCHW
            plane = batch[:, channel]
            np.multiply(crops[..., 2 - channel], self._scale[channel], out=plane, dtype=np.float32)
            plane -= self._offset[channel]
        return batch

    def infer(self, batch: FloatArray) -> FloatArray:
        """Run the network on a preprocessed batch; return L2-normalized embeddings (N, D)."""
        step = self.batch_size if self.is_batched else 1
        outputs = [
            np.asarray(self._session.run(None, {self._input_name: batch[i : i + step]})[0], np.float32)
            for i in range(0, len(batch), step)
        ]
        if not outputs:
            return np.zeros((0, self.dim), np.float32)
        return _normalize_rows(np.concatenate(outputs).reshape(len(batch), -1))

    def embed(self, image_bgr: ImageArray, xyxy: FloatArray) -> FloatArray:
        """Return one L2-normalized embedding per box, shape (N, D), float32.

        Args:
            image_bgr: The image, shape (H, W, 3), uint8, BGR.
            xyxy: Boxes, shape (N, 4), pixels of ``image_bgr``; they may reach outside it.

        Raises:
            InvalidInputError: When the image or the boxes have the wrong shape, type or values.
        """
        return self.infer(self.preprocess(image_bgr, xyxy))

    def _runs_batches_alike(self, session: ort.InferenceSession) -> bool:
        """Return whether ``session`` embeds two inputs at once as it embeds each alone."""
        probe = np.random.default_rng(0).standard_normal((2, 3, self.input_height, self.input_width))
        probe = probe.astype(np.float32)
        try:
            together = session.run(None, {self._input_name: probe})[0]
            alone = [session.run(None, {self._input_name: probe[i : i + 1]})[0] for i in range(2)]
        except _RUN_ERRORS:
            return False
        together = np.asarray(together, np.float32)
        alone_rows = np.asarray(np.concatenate(alone), np.float32)
        if together.shape != alone_rows.shape:
            return False
        return bool(np.allclose(together, alone_rows, atol=_BATCH_PARITY_ATOL))


def _open_session(
    model: onnx.ModelProto, model_path: Path, num_threads: int, providers: list[str]
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=providers)
    except LOAD_ERRORS as error:
        raise ModelPackageError(f"{model_path}: ONNX Runtime could not load it: {error}") from error


def _with_dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Return a copy whose batch dimension is free, or None when the graph cannot take one.

    The inputs' and outputs' first dimension becomes ``batch`` and every constant Reshape target
    that pins it to 1 is set to 0 ("copy from the input"). Other ops that bake in the batch are
    caught by the parity check the caller runs.
    """
    dynamic = onnx.ModelProto()
    dynamic.CopyFrom(model)
    graph = dynamic.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    constants = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute) or consumers[node.input[1]] != {
            "Reshape"
        }:
            return None
        tensor = _constant_tensor(node.input[1], initializers, constants)
        if tensor is None:
            return None
        target = numpy_helper.to_array(tensor).copy()
        if target.ndim != 1 or target.size == 0 or int(target[0]) not in (-1, 0, 1):
            return None
        if int(target[0]) == 1:
            target[0] = 0
            tensor.CopyFrom(numpy_helper.from_array(target, tensor.name))
    input_names = {tensor.name for tensor in graph.initializer}
    for value in [*(v for v in graph.input if v.name not in input_names), *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims:
            return None
        dims[0].Clear()
        dims[0].dim_param = "batch"
    del graph.value_info[:]  # shape hints recorded for batch 1
    return dynamic


def _constant_tensor(
    name: str, initializers: dict[str, onnx.TensorProto], constants: dict[str, onnx.NodeProto]
) -> onnx.TensorProto | None:
    if name in initializers:
        return initializers[name]
    node = constants.get(name)
    if node is None:
        return None
    for attribute in node.attribute:
        if attribute.name == "value":
            tensor: onnx.TensorProto = attribute.t
            return tensor
    return None


def _check_inputs(image_bgr: ImageArray, xyxy: FloatArray) -> None:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise InvalidInputError(f"image_bgr: expected a uint8 array, got {getattr(image_bgr, 'dtype', None)}")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or 0 in image_bgr.shape:
        raise InvalidInputError(f"image_bgr: expected shape (H, W, 3), got {image_bgr.shape}")
    if not isinstance(xyxy, np.ndarray) or xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise InvalidInputError(f"xyxy: expected shape (N, 4), got {getattr(xyxy, 'shape', None)}")
    if not np.isfinite(xyxy).all():
        raise InvalidInputError("xyxy: expected finite values, got NaN or inf")


def _normalize_rows(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: FloatArray = (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return unit
