"""Serving latency on CPU: ``python -m serving`` over REST v1, REST v2 and gRPC v2 vs a bare loop.

One random-init yolov8n INT8 package (640) serves real video frames (JPEG, quality 90), each
request with a ``stream_id`` so tracking runs too. The floor is the same package called in-process
(decode + ``OnnxDetector.detect``, 2 threads); the server runs with ``--threads 2`` on the same
cores as the clients. What is measured and how to read the JSON: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.metadata
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import grpc
import httpx
import numpy as np
from detector_latency import FIXTURES_DIR, REPO_ROOT, STATE_DIR, cpu_seconds, environment, percentile
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cvops.config import DetectorSettings
from cvops.images import decode_image
from cvops.offline import configure_offline

NUM_THREADS, IMGSZ, MODEL, TIMEOUT_S = 2, 640, "detector", 60.0
PROTOCOLS, CLIENTS = ("rest_v1", "rest_v2", "grpc_v2"), (1, 4)
BATCHINGS = {
    "batch_1": ["--max-batch-size", "1"],
    "batch_4": ["--max-batch-size", "4", "--max-latency-ms", "5"],
}
GOAL_SLACK_MS, GOAL_P99_4_CLIENTS_MS = 10.0, 100.0


class RequestFailed(Exception):
    """A non-200 answer; the message is the error kind counted in the results."""


def send(protocol: str, connection: Any, jpeg: bytes, stream_id: str, index: int) -> tuple[float, float]:
    """Send one frame; return (client latency ms, the server's own ``timings_ms.detect``)."""
    start = time.perf_counter()
    if protocol == "grpc_v2":  # raw BYTES: a 4-byte little-endian length, then the JPEG
        tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])
        parameters = {"stream_id": pb.InferParameter(string_param=stream_id)}
        parameters["frame_index"] = pb.InferParameter(int64_param=index)
        raw_in = [len(jpeg).to_bytes(4, "little") + jpeg]
        request = pb.ModelInferRequest(
            model_name=MODEL, inputs=[tensor], raw_input_contents=raw_in, parameters=parameters
        )
        raw = connection.ModelInfer(request, timeout=TIMEOUT_S).raw_output_contents[0]
        latency_ms = (time.perf_counter() - start) * 1e3
        return latency_ms, json.loads(raw[4 : 4 + int.from_bytes(raw[:4], "little")])["timings_ms"]["detect"]
    image_b64 = base64.b64encode(jpeg).decode()
    if protocol == "rest_v1":
        instance = {"image_b64": image_b64, "stream_id": stream_id, "frame_index": index}
        response = connection.post(f"/v1/models/{MODEL}:predict", json={"instances": [instance]})
    else:
        body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image_b64]}]}
        body["parameters"] = {"stream_id": stream_id, "frame_index": index}
        response = connection.post(f"/v2/models/{MODEL}/infer", json=body)
    latency_ms = (time.perf_counter() - start) * 1e3
    if response.status_code != 200:
        raise RequestFailed(f"HTTP {response.status_code}")
    answer = response.json()
    result = (
        answer["predictions"][0] if protocol == "rest_v1" else json.loads(answer["outputs"][0]["data"][0])
    )
    return latency_ms, result["timings_ms"]["detect"]


class Server:
    """``python -m serving`` in a subprocess on free loopback ports, logging to a file."""

    def __init__(self, package: Path, log: Path, extra: Sequence[str]) -> None:
        ports = [_free_port(), _free_port()]
        self.url, self.grpc_target = f"http://127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"
        self.log = log
        command = [sys.executable, "-m", "serving", "--model-dir", str(package), "--http-port", str(ports[0])]
        command += ["--grpc-port", str(ports[1]), "--allow-anonymous", "--threads", str(NUM_THREADS), *extra]
        self.command = shlex.join(["python", *command[1:]])
        with log.open("wb") as sink:  # a pipe nobody reads fills up and blocks the server
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not become ready in 120 s")

    def connect(self, protocol: str) -> tuple[Any, Callable[[], None]]:
        """Open one persistent connection for ``protocol``; return it and its close function."""
        if protocol == "grpc_v2":
            channel = grpc.insecure_channel(self.grpc_target)
            return pb_grpc.GRPCInferenceServiceStub(channel), channel.close
        http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S)
        return http, http.close

    def batch_totals(self) -> tuple[float, float]:
        """Return (frames, detector calls) so far, from the ``cvops_batch_size`` histogram."""
        totals = {"sum": 0.0, "count": 0.0}
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            for key in totals:
                if line.startswith(f'cvops_batch_size_{key}{{model="{MODEL}"}} '):
                    totals[key] = float(line.split()[-1])
        return totals["sum"], totals["count"]

    def cpu_s(self) -> float:
        """Return the CPU seconds the server process used so far (all threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> list[str]:
        """Terminate by PID (kill after 30 s); return the log's first error and warning lines."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if any(w in line for w in ("ERROR", "Traceback", "WARNING"))][:10]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_int8_package(work_dir: Path, height: int | None) -> Path:
    """Export a random-init yolov8n (torch.manual_seed(0)) to ONNX at 640 and quantize it to INT8.

    ``height`` gives a rectangular input (640 wide) for a camera of fixed aspect ratio.
    """
    import torch
    from ultralytics import YOLO

    from cvops.training.export import export_onnx
    from cvops.training.quantize import quantize_int8

    torch.manual_seed(0)
    YOLO("yolov8n.yaml").save(work_dir / "yolov8n.pt")
    calibration = work_dir / "calibration"
    calibration.mkdir()
    for split in ("train", "val"):
        for image in sorted((FIXTURES_DIR / "coco8" / "images" / split).iterdir()):
            (calibration / image.name).write_bytes(image.read_bytes())
    export_onnx(str(work_dir / "yolov8n.pt"), work_dir / "fp32", IMGSZ, height=height)
    quantize_int8(work_dir / "fp32", calibration, work_dir / "int8")
    return work_dir / "int8"


def read_frames(video: Path, count: int) -> list[bytes]:
    """Decode the first ``count`` frames of ``video`` and JPEG-encode them (quality 90)."""
    capture, frames = cv2.VideoCapture(str(video)), []
    while len(frames) < count and (frame := capture.read()[1]) is not None:
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    capture.release()
    if not frames:
        raise RuntimeError(f"{video}: no frame decoded")
    return frames


class Floor:
    """The same package in-process (decode + ``OnnxDetector.detect`` per frame): what the server cannot beat.

    Timed in turns between the server runs, so that drift of the machine hits both alike.
    """

    def __init__(self, package: Path, jpegs: Sequence[bytes], warmup: int = 20) -> None:
        from cvops.detection.backends.onnx import OnnxDetector

        self.detector = OnnxDetector(package, DetectorSettings(num_threads=NUM_THREADS))
        self.jpegs, self.other_cpu_s = jpegs, 0.0
        self.samples: list[float] = []
        self.time(warmup)
        self.samples, self.other_cpu_s = [], 0.0

    def time(self, runs: int) -> None:
        """Time ``runs`` more calls, one frame each."""
        busy_start_s, own_start_s = cpu_seconds()
        for _ in range(runs):
            jpeg = self.jpegs[len(self.samples) % len(self.jpegs)]
            start = time.perf_counter()
            self.detector.detect([decode_image(jpeg, "frame")])
            self.samples.append((time.perf_counter() - start) * 1e3)
        busy_s, own_s = cpu_seconds()
        self.other_cpu_s += max(busy_s - busy_start_s - (own_s - own_start_s), 0.0)

    def stats(self) -> dict[str, Any]:
        done = np.array(self.samples)
        stats = {"runs": len(done), "p50_ms": percentile(done, 50), "p99_ms": percentile(done, 99)}
        return stats | {"other_processes_cpu_s": round(self.other_cpu_s, 2)}


def run_load(
    server: Server, protocol: str, clients: int, batching: str, jpegs: Sequence[bytes],
    args: argparse.Namespace, advance: Callable[[], None],
) -> dict[str, Any]:  # fmt: skip
    """Send ``args.requests`` frames from ``clients`` threads, one connection and stream each."""
    counts = [args.requests // clients + (c < args.requests % clients) for c in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(c: int) -> tuple[list[tuple[float, float]], list[str]]:
        connection, close = server.connect(protocol)
        stream, offset = f"{protocol}-c{clients}-{batching}-{c}", c * len(jpegs) // clients
        done: list[tuple[float, float]] = []
        errors: list[str] = []
        try:
            for i in range(args.warmup + counts[c]):
                if i == args.warmup:
                    barrier.wait()
                try:
                    outcome = send(protocol, connection, jpegs[(offset + i) % len(jpegs)], stream, i)
                except RequestFailed as error:
                    errors.append(str(error))
                except (httpx.HTTPError, grpc.RpcError) as error:
                    errors.append(type(error).__name__)
                else:
                    done.append(outcome)
                if i == args.warmup - 1:
                    done, errors = [], []  # warm-up answers are not counted
                elif i >= args.warmup:
                    advance()
            return done, errors
        finally:
            barrier.abort()  # harmless once all passed; frees the others if this client failed first
            close()

    frames_before, calls_before = server.batch_totals()
    (busy_start_s, own_start_s), server_start_s = cpu_seconds(), server.cpu_s()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, c) for c in range(clients)]
        with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: result() raises
            barrier.wait()
        start = time.perf_counter()
        outcomes = [future.result() for future in futures]
        wall_s = time.perf_counter() - start
    (busy_s, own_s), server_s = cpu_seconds(), server.cpu_s()
    frames_after, calls_after = server.batch_totals()
    other_cpu_s = busy_s - busy_start_s - (own_s - own_start_s) - (server_s - server_start_s)
    samples = np.array([x for done, _ in outcomes for x in done]).reshape(-1, 2)
    errors = Counter(e for _, failed in outcomes for e in failed)
    ok, (latency, detect) = len(samples), samples.T
    return {
        "protocol": protocol, "clients": clients, "batching": batching, "requests": args.requests,
        "errors": sum(errors.values()), "error_rate": round(1 - ok / args.requests, 4),
        "error_kinds": dict(errors),
        "p50_ms": percentile(latency, 50) if ok else None, "p99_ms": percentile(latency, 99) if ok else None,
        "server_detect_ms_p50": percentile(detect, 50) if ok else None,
        "p50_minus_detect_ms": round(percentile(latency, 50) - percentile(detect, 50), 3) if ok else None,
        "throughput_fps": round(ok / wall_s, 2), "wall_s": round(wall_s, 2),
        "mean_batch_size": round((frames_after - frames_before) / max(calls_after - calls_before, 1), 2),
        "server_cpu_ms_per_frame": round((server_s - server_start_s) * 1e3 / (ok + args.warmup * clients), 1),
        "other_processes_cpu_s": round(max(other_cpu_s, 0.0), 2),
    }  # fmt: skip


def check_goals(rows: list[dict[str, Any]], floor: dict[str, Any]) -> dict[str, Any]:
    """Overhead over the floor, the two latency goals, and whether dynamic batching paid off."""
    by_key = {(r["protocol"], r["clients"], r["batching"]): r for r in rows}
    one = {p: by_key[p, 1, "batch_1"]["p99_ms"] for p in PROTOCOLS}
    limit_ms = round(floor["p99_ms"] + GOAL_SLACK_MS, 3)
    four = {}
    for p in PROTOCOLS:
        r = by_key[p, 4, "batch_1"]
        is_met = r["errors"] == 0 and r["p99_ms"] is not None and r["p99_ms"] < GOAL_P99_4_CLIENTS_MS
        four[p] = {"measured_p99_ms": r["p99_ms"], "errors": r["errors"], "met": is_met}
    rest = {b: {k: by_key["rest_v1", 4, b][k] for k in ("p99_ms", "throughput_fps", "mean_batch_size")}
            for b in BATCHINGS}  # fmt: skip
    b1, b4 = rest["batch_1"], rest["batch_4"]
    helps = b4["throughput_fps"] > 1.05 * b1["throughput_fps"] and b4["p99_ms"] <= b1["p99_ms"]
    return {
        "overhead_ratio_p99": {p: round(v / floor["p99_ms"], 3) for p, v in one.items()},
        "server_minus_floor_p99_ms": {p: round(v - floor["p99_ms"], 3) for p, v in one.items()},
        "goals": {
            "one_client_p99_le_floor_plus_10ms": {
                p: {"measured_p99_ms": v, "limit_ms": limit_ms, "met": v <= limit_ms} for p, v in one.items()
            },
            "four_clients_p99_lt_100ms_zero_errors": four,
        },
        "batching_helps_on_cpu": {
            "case": "rest_v1, 4 clients; batch_4 = --max-batch-size 4 --max-latency-ms 5",
            "rule": "batch_4 throughput > 1.05x batch_1 and batch_4 p99 <= batch_1 p99",
            **rest,
            "helps": helps,
        },
    }


TABLE = {"protocol": "protocol", "clients": "clients", "batching": "batching", "requests": "requests"}
TABLE |= {"errors": "errors", "p50": "p50_ms", "p99": "p99_ms", "detect": "server_detect_ms_p50"}
TABLE |= {"p50-det": "p50_minus_detect_ms", "fps": "throughput_fps", "batch": "mean_batch_size"}
TABLE |= {"cpu/frame": "server_cpu_ms_per_frame", "other cpu s": "other_processes_cpu_s"}


def render_table(rows: list[dict[str, Any]], floor: dict[str, Any]) -> Table:
    table = Table(
        title=f"Serving latency, ms (floor in-process: p50 {floor['p50_ms']}, p99 {floor['p99_ms']})"
    )
    for column in TABLE:
        table.add_column(column, justify="left" if column in ("protocol", "batching") else "right")
    for r in rows:
        table.add_row(*[f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in TABLE.values()])
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per client first")
    parser.add_argument("--floor-runs", type=int, default=300, help="timed in-process calls (>= 200)")
    parser.add_argument("--frames", type=int, default=100, help="video frames to cycle through")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serving_latency.json"))
    parser.add_argument(
        "--height", type=int, default=None, help="input height (640 wide), e.g. 288 for this 640x272 video"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure_offline(STATE_DIR)  # before anything imports ultralytics
    cv2.setNumThreads(NUM_THREADS)
    console = Console()
    console.width = max(console.width, 140)
    video = FIXTURES_DIR / "video" / "bikes.mp4"
    jpegs = read_frames(video, args.frames)
    height, width = decode_image(jpegs[0], "frame").shape[:2]
    rows: list[dict[str, Any]] = []
    logs: dict[str, list[str]] = {}
    commands: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        package = build_int8_package(Path(tmp), args.height)
        busy_start_s, own_start_s = cpu_seconds()
        children_start_s = sum(os.times()[2:4])  # the servers' CPU counts as ours once waited for
        total = len(BATCHINGS) * len(PROTOCOLS) * len(CLIENTS) * args.requests
        task = progress.add_task("requests", total=total)

        def advance() -> None:
            progress.advance(task)

        servers: dict[str, Server] = {}
        try:  # both servers up at once: an idle one costs no CPU (rows' other_processes_cpu_s shows it)
            for batching, extra in BATCHINGS.items():
                servers[batching] = Server(package, Path(tmp) / f"serving-{batching}.log", extra)
                commands[batching] = servers[batching].command
            floor = Floor(package, jpegs)
            turns = [(protocol, clients) for protocol in PROTOCOLS for clients in CLIENTS]
            for turn, (protocol, clients) in enumerate(turns):
                floor.time(-(-args.floor_runs // len(turns)))
                for batching, server in list(servers.items())[:: 1 - 2 * (turn % 2)]:  # alternate order
                    progress.update(task, description=f"{protocol} x{clients} {batching}")
                    rows.append(run_load(server, protocol, clients, batching, jpegs, args, advance))
        finally:
            logs |= {batching: server.stop() for batching, server in servers.items()}
    busy_s, own_s = cpu_seconds()
    own_s += sum(os.times()[2:4]) - children_start_s
    other_cpu_s = round(max(busy_s - busy_start_s - (own_s - own_start_s), 0.0), 1)
    settings = {
        "input_hw": [args.height or IMGSZ, IMGSZ],
        "weights": "yolov8n.yaml, 80 classes, random init, torch.manual_seed(0); INT8, coco8 calibration",
        "imgsz": IMGSZ,
        "frames": f"first {len(jpegs)} frames of {video.name} ({width}x{height}), JPEG quality 90, cycled",
        "num_threads": NUM_THREADS,
        "server_commands": commands,
        "requests_per_configuration": args.requests,
        "warmup_requests_per_client": args.warmup,
        "latency": "client wall time per request (base64, send, answer); failed requests excluded",
        "server_detect_ms_p50": "server's own timings_ms.detect per frame (preprocess + run + postprocess)",
        "p50_minus_detect_ms": "p50 - server_detect_ms_p50: protocol + decode + queueing, robust to VM drift",
        "mean_batch_size": "frames per detector call on the server (cvops_batch_size), warm-up included",
        "server_cpu_ms_per_frame": "server process CPU (all threads) / frames answered, warm-up included",
        "floor": "in-process decode_image + OnnxDetector.detect per frame; 20 warm-up calls",
        "order": "each protocol x clients: a floor turn, then both servers back to back (order alternates)",
        "other_processes_cpu_s": other_cpu_s,
        "server_log_warnings": logs,
    }
    report = {"command": shlex.join(sys.argv), **environment(), "settings": settings, "floor": floor.stats()}
    names = ("kserve", "httpx", "grpcio", "fastapi", "uvicorn")
    report["versions"] |= {name: importlib.metadata.version(name) for name in names}
    git = ["git", "describe", "--always", "--dirty"]  # the serving code measured
    report["versions"]["git"] = subprocess.run(
        git, cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    report |= {"results": rows, **check_goals(rows, report["floor"])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(render_table(rows, report["floor"]))
    console.print({k: report[k] for k in ("server_minus_floor_p99_ms", "goals", "batching_helps_on_cpu")})
    if other_cpu_s > 0.01 * (own_s - own_start_s):
        console.print(f"[red]other processes used {other_cpu_s} CPU s meanwhile: numbers are not clean")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
