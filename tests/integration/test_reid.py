"""OnnxEmbedder with the real OSNet-x0.25 (MSMT17) on real MOT17-04 people."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from cvops.errors import ModelPackageError
from cvops.images import read_image
from cvops.tracking.reid import OnnxEmbedder, cosine_distance
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

OSNET = "models/osnet_x0_25_msmt17/osnet_x0_25_msmt17.onnx"
MOT17_04 = "mot17-mini/train/MOT17-04-FRCNN"


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder(fixture_path(OSNET), num_threads=2, batch_size=16)


def gt_boxes(frame: int, min_visibility: float) -> dict[int, np.ndarray]:
    """Pedestrians of one MOT17-04 frame (1-based) at least ``min_visibility`` visible: id -> xyxy."""
    rows = np.loadtxt(fixture_path(MOT17_04) / "gt" / "gt.txt", delimiter=",")
    keep = (rows[:, 0] == frame) & (rows[:, 6] == 1) & (rows[:, 7] == 1) & (rows[:, 8] >= min_visibility)
    return {int(r[1]): np.array([r[2], r[3], r[2] + r[4], r[3] + r[5]], np.float32) for r in rows[keep]}


def frame_image(frame: int) -> np.ndarray:
    return read_image(fixture_path(MOT17_04) / "img1" / f"{frame:06d}.jpg")


def test_same_person_is_closest_across_frames(embedder: OnnxEmbedder) -> None:
    first, last = gt_boxes(1, 0.8), gt_boxes(8, 0.8)
    ids = sorted(first.keys() & last.keys())
    assert len(ids) == 16  # the identities the reference numbers were measured on
    a = embedder.embed(frame_image(1), np.stack([first[i] for i in ids]))
    b = embedder.embed(frame_image(8), np.stack([last[i] for i in ids]))
    similarity = 1.0 - cosine_distance(a, b)
    same, different = np.diag(similarity), similarity[~np.eye(len(ids), dtype=bool)]
    # Reference (fixtures README): same-id mean 0.929, different-id mean 0.519, rank-1 16/16.
    assert same.mean() > 0.85
    assert different.mean() < same.mean() - 0.25
    assert (similarity.argmax(axis=1) == np.arange(len(ids))).mean() >= 0.9


def test_batched_matches_the_original_graph_one_by_one(embedder: OnnxEmbedder) -> None:
    boxes = np.stack(list(gt_boxes(1, 0.0).values()))[:20]  # 20 = one full batch of 16 + 4
    image = frame_image(1)
    assert embedder.is_batched  # the fixture graph has batch 1 and was given a free batch
    batched = embedder.embed(image, boxes)
    original = ort.InferenceSession(str(fixture_path(OSNET)), providers=["CPUExecutionProvider"])
    inputs = embedder.preprocess(image, boxes)
    one_by_one = np.concatenate([original.run(None, {"images": inputs[i : i + 1]})[0] for i in range(20)])
    one_by_one /= np.linalg.norm(one_by_one, axis=1, keepdims=True)
    assert batched.shape == (20, 512)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_batch_size_one_agrees(embedder: OnnxEmbedder) -> None:
    boxes = np.stack(list(gt_boxes(1, 0.0).values()))[:5]
    single = OnnxEmbedder(fixture_path(OSNET), batch_size=1)
    np.testing.assert_allclose(
        single.embed(frame_image(1), boxes), embedder.embed(frame_image(1), boxes), atol=1e-4
    )


def test_no_boxes_gives_no_rows(embedder: OnnxEmbedder) -> None:
    got = embedder.embed(frame_image(1), np.zeros((0, 4), np.float32))
    assert got.shape == (0, 512)
    assert got.dtype == np.float32


def test_boxes_reaching_outside_the_image(embedder: OnnxEmbedder) -> None:
    image = frame_image(1)  # 1920x1080
    boxes = np.array(
        [
            [-50, -80, 100, 200],  # partly outside: embedded as its clipped part
            [1850, 900, 2100, 1300],
            [3000, 3000, 3100, 3100],  # wholly outside: the nearest pixel
            [10, 10, 10, 10],  # zero area: one pixel
        ],
        np.float32,
    )
    got = embedder.embed(image, boxes)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    clipped = embedder.embed(image, np.array([[0, 0, 100, 200], [1850, 900, 1920, 1080]], np.float32))
    np.testing.assert_allclose(got[:2], clipped, atol=1e-5)


def test_missing_model_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "osnet.onnx"
    with pytest.raises(ModelPackageError, match=re.escape(str(missing))):
        OnnxEmbedder(missing)


def test_file_that_is_not_a_model(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xffnot an onnx model at all")
    with pytest.raises(ModelPackageError, match=re.escape(str(garbage))):
        OnnxEmbedder(garbage)


def test_graph_that_bakes_in_the_batch_runs_one_crop_at_a_time(tmp_path: Path) -> None:
    # (1,3,8,4) -> mean per channel -> flatten everything -> add a batch axis: a batch of two
    # would come out (1, 6), so the free-batch copy fails its parity check and is not used.
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"]),
        helper.make_node("Unsqueeze", ["flat", "axes"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bakes_batch",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
        [
            helper.make_tensor("flat_shape", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [0]),
        ],
    )
    path = tmp_path / "bakes_batch.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    embedder = OnnxEmbedder(path, batch_size=8)
    assert not embedder.is_batched
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    got = embedder.embed(image, np.array([[0, 0, 10, 20], [5, 5, 30, 40], [0, 0, 30, 40]], np.float32))
    assert got.shape == (3, 3)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
