"""The ``cvops`` command as a user runs it: real processes, real files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

CVOPS = [sys.executable, "-m", "cvops"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CVOPS, *args], capture_output=True, text=True, timeout=600, check=False)


def test_detect_writes_json_lines_and_annotated_images(yolox_package: Path, tmp_path: Path) -> None:
    images = fixture_path("images")
    result = _run("detect", str(images), "--model", str(yolox_package), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]
    by_name = {Path(r["source"]).name: r for r in records}
    assert {"bus.jpg", "zidane.jpg"} <= set(by_name)
    assert "bus" in {d["class_name"] for d in by_name["bus.jpg"]["detections"]}
    assert by_name["bus.jpg"]["width"] == 810
    assert (tmp_path / "annotated" / "bus.jpg").stat().st_size > 10_000


def test_detect_without_out_prints_one_json_record_per_image(yolox_package: Path) -> None:
    result = _run("detect", str(fixture_path("images/zidane.jpg")), "--model", str(yolox_package))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert {d["class_name"] for d in json.loads(line)["detections"]} >= {"person", "tie"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jpg", None, "no such file or folder"),
        ("empty.jpg", b"", "empty file"),
        ("text.png", b"hello", "not a decodable image"),
    ],
    ids=["missing", "empty", "not-an-image"],
)
def test_bad_image_exits_2_with_one_line_naming_the_file(
    yolox_package: Path, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = _run("detect", str(path), "--model", str(yolox_package))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_model_package_is_one_line(tmp_path: Path) -> None:
    result = _run("detect", str(fixture_path("images/bus.jpg")), "--model", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path}: expected a model package with model.json"


def test_export_onnx_from_config_then_detect(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    result = _run("export", "yolov8n.yaml", "--format", "onnx", "--imgsz", "64", "--out", str(package))
    assert result.returncode == 0, result.stderr
    spec = json.loads((package / "model.json").read_text())
    assert (spec["family"], spec["input_height"], spec["precision"]) == ("yolov8", 64, "fp32")
    detect = _run("detect", str(fixture_path("images/bus.jpg")), "--model", str(package))
    assert detect.returncode == 0, detect.stderr


def test_export_engine_without_tensorrt_says_so_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    if _has_tensorrt():
        pytest.skip("TensorRT is installed here; the GPU test covers the engine path")
    result = _run(
        "export", "yolov8n.yaml", "--format", "engine", "--imgsz", "64", "--out", str(tmp_path / "e")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: TensorRT is not installed: install cvops[tensorrt] on a machine with an NVIDIA GPU and CUDA"
    ]


def test_help_documents_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("detect", "export", "package", "version"):
        assert command in result.stdout


def _has_tensorrt() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def test_serve_starts_a_loopback_server_that_answers(yolox_package: Path, tmp_path: Path) -> None:
    import base64

    import httpx

    from cvops.processes import free_port, wait_until_ready

    port = free_port()
    command = [
        *CVOPS,
        "serve",
        "--model",
        str(yolox_package),
        "--port",
        str(port),
        "--grpc-port",
        "0",
        "--allow-anonymous",
    ]
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/v2/health/ready", tmp_path / "serve.log")
        image = base64.b64encode(fixture_path("images/bus.jpg").read_bytes()).decode()
        body = {"instances": [{"image_b64": image}]}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/models/detector:predict", json=body, timeout=60)
        assert response.status_code == 200, (tmp_path / "serve.log").read_text()[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_export_rectangular_input_for_a_fixed_camera_aspect(tmp_path: Path) -> None:
    package = tmp_path / "rect"
    result = _run("export", "yolov8n.yaml", "--imgsz", "96", "--height", "64", "--out", str(package))
    assert result.returncode == 0, result.stderr
    spec = json.loads((package / "model.json").read_text())
    assert (spec["input_width"], spec["input_height"]) == (96, 64)
    detect = _run(
        "detect", str(fixture_path("images/zidane.jpg")), "--model", str(package), "--score-threshold", "0"
    )
    assert detect.returncode == 0, detect.stderr
    assert json.loads(detect.stdout)["width"] == 1280
    bad = _run("export", "yolov8n.yaml", "--imgsz", "96", "--height", "50", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2
    assert "height: expected a positive multiple of 32, got 50" in bad.stderr


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["no-such-command"], 2), (["track", "--no-such-option"], 2), (["version"], 0)],
)
def test_usage_errors_and_exit_codes_pass_through_the_process(argv: list[str], code: int) -> None:
    result = _run(*argv)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
