"""``cvops stream``: detect and track on cameras, streams, files or folders, live."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import cast

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from cvops.cli.app import app
from cvops.config import DetectorSettings
from cvops.contracts.model_package import read_model_package
from cvops.detection.detector import Detector
from cvops.detection.loader import load_detector
from cvops.errors import InvalidInputError
from cvops.tracking.bytetrack import ByteTracker
from cvops.tracking.image_tracker import ImageTracker
from cvops.tracking.motion_compensation import SparseFlowCompensator
from cvops.tracking.reid import Embedder, OnnxEmbedder
from cvops.video.feature_sink import FeatureSink
from cvops.video.frames import FrameSource
from cvops.video.metrics import VideoMetrics
from cvops.video.pipeline import PipelineSettings, PipelineSummary, VideoPipeline
from cvops.video.queues import QueuePolicy
from cvops.video.remote import RemoteDetector, WireProtocol
from cvops.video.sinks import AnnotatedVideoSink, CropSink, JsonlSink, MotSink, Sink
from cvops.video.sources import open_source

REFRESH_PER_S = 2


@app.command()
def stream(
    sources: list[str] = typer.Option(
        ...,
        "--source",
        "-s",
        help="Video file, rtsp:// or http(s):// URL, /dev/videoN, or image folder; repeat.",
    ),
    model: Path | None = typer.Option(None, "--model", "-m", help="Model package to run in this process."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Or a KServe endpoint (http://host:port)."),
    protocol: str = typer.Option("http", help="With --endpoint: 'http' (v2 REST) or 'grpc'."),
    model_name: str = typer.Option("detector", help="With --endpoint: the served model's name."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write results.jsonl, mot/, summary.json here."
    ),
    policy: QueuePolicy = typer.Option(QueuePolicy.DROP_OLDEST, help="What a full camera queue does."),
    queue_size: int = typer.Option(1, help="Frames each camera's queue holds (live: 1 keeps latency low)."),
    lag_budget_ms: float = typer.Option(
        0.0, help="Skip frames older than this when their turn comes (0: off)."
    ),
    every_n: int = typer.Option(1, help="Process every Nth decoded frame."),
    target_fps: float = typer.Option(0.0, help="Or sample to this rate (0: every frame)."),
    realtime: bool = typer.Option(False, help="Play files at their frame rate, as a live camera would."),
    max_batch_size: int = typer.Option(
        1, help="Most frames (one per camera) per detector call (raise on a GPU; on a CPU 1 is fastest)."
    ),
    score_threshold: float = typer.Option(0.25, help="Drop boxes at or below this score."),
    threads: int = typer.Option(0, help="Detector CPU threads (0: runtime default)."),
    track: bool = typer.Option(True, help="Track objects per camera (ByteTrack)."),
    reid: Path | None = typer.Option(None, help="Re-id ONNX model: appearance in tracking."),
    cmc: bool = typer.Option(False, help="Compensate camera motion in tracking."),
    annotate: bool = typer.Option(False, help="With --out: write an annotated MP4 per camera."),
    crops_every: int = typer.Option(0, help="With --out: save every Nth processed frame for labeling."),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="Append per-frame features to this Feast repository's offline store (cvops features apply).",
    ),
    metrics_port: int = typer.Option(0, help="Serve Prometheus /metrics on 127.0.0.1:PORT (0: off)."),
    duration_s: float = typer.Option(0.0, help="Stop after this many seconds (0: when sources end)."),
) -> None:
    """Detect and track on one or more sources with bounded queues; Ctrl-C stops cleanly."""
    if (model is None) == (endpoint is None):
        raise InvalidInputError("give exactly one of --model and --endpoint")
    if (annotate or crops_every) and out is None:
        raise InvalidInputError("--annotate and --crops-every need --out")
    feature_sinks = _feature_sinks(features)  # before the model loads: a wrong folder fails fast
    detector, name, version = _detector(model, endpoint, protocol, model_name, threads)
    opened: list[FrameSource] = [
        open_source(uri, every_n=every_n, target_fps=target_fps or None, realtime=realtime) for uri in sources
    ]
    settings = PipelineSettings(
        policy=policy,
        queue_size=queue_size,
        lag_budget_s=lag_budget_ms / 1e3 if lag_budget_ms > 0 else None,
        max_batch_size=max_batch_size,
        detector=DetectorSettings(score_threshold, num_threads=threads),
    )
    embedder: Embedder | None = OnnxEmbedder(reid, num_threads=threads) if reid is not None else None

    def new_tracker() -> ImageTracker:
        return ImageTracker(ByteTracker(), embedder, SparseFlowCompensator() if cmc else None)

    metrics = VideoMetrics() if metrics_port else None
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    pipeline = VideoPipeline(
        opened, detector, _sinks(out, annotate, crops_every) + feature_sinks, settings,
        new_tracker if track else None, metrics, name, version,
    )  # fmt: skip
    summary = _run_live(pipeline, duration_s)
    console = Console(stderr=True)
    console.print(_summary_table(summary))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
        console.print(f"wrote {out}/")
    failed = [c for c in summary.cameras if c.error]
    for camera in failed:
        console.print(f"[red]{camera.camera_id}[/red]: {camera.error}", highlight=False)
    if failed and len(failed) == len(summary.cameras):
        raise typer.Exit(2)


def _detector(
    model: Path | None, endpoint: str | None, protocol: str, model_name: str, threads: int
) -> tuple[Detector, str, str]:
    if model is not None:
        spec = read_model_package(model)
        # The same version string the server reports for a package.
        version = f"{spec.name}-{spec.precision}"
        return load_detector(model, DetectorSettings(num_threads=threads)), spec.name, version
    assert endpoint is not None
    # RemoteDetector refuses any other protocol with a one-line error.
    return RemoteDetector(endpoint, model_name, protocol=cast(WireProtocol, protocol)), model_name, endpoint


def _sinks(out: Path | None, annotate: bool, crops_every: int) -> list[Sink]:
    if out is None:
        return []
    sinks: list[Sink] = [JsonlSink(out / "results.jsonl"), MotSink(out / "mot")]
    if annotate:
        sinks.append(AnnotatedVideoSink(out / "video"))
    if crops_every:
        sinks.append(CropSink(out / "pool", every_n=crops_every))
    return sinks


def _feature_sinks(features: Path | None) -> list[Sink]:
    if features is None:
        return []
    from cvops.features.store import CONFIG_FILE, offline_dir

    if not (features / CONFIG_FILE).is_file():
        raise InvalidInputError(
            f"--features: expected a feature repository (`cvops features apply --repo DIR`), got {features}"
        )
    return [FeatureSink(offline_dir(features))]


def _run_live(pipeline: VideoPipeline, duration_s: float) -> PipelineSummary:
    """Run with a live per-camera table; Ctrl-C (or ``duration_s``) stops it and flushes the sinks."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_interrupt)
    timer = threading.Timer(duration_s, stop.set) if duration_s > 0 else None
    result: list[PipelineSummary] = []
    worker = threading.Thread(target=lambda: result.append(pipeline.run(stop)), name="pipeline", daemon=True)
    try:
        if timer is not None:
            timer.start()
        worker.start()
        with Live(
            _live_table(pipeline), console=Console(stderr=True), refresh_per_second=REFRESH_PER_S
        ) as live:
            while worker.is_alive():
                worker.join(1.0 / REFRESH_PER_S)
                live.update(_live_table(pipeline))
    finally:
        stop.set()
        worker.join()
        if timer is not None:
            timer.cancel()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
    if not result:
        raise InvalidInputError("the pipeline stopped without a summary (see the log above)")
    return result[0]


def _live_table(pipeline: VideoPipeline) -> Group:
    table = Table("camera", "read", "processed", "dropped", "corrupt", "reconnects", "queue")
    for camera_id, stats, depth in pipeline.camera_stats():
        with stats.lock:
            row = (
                stats.frames_read, stats.frames_processed, sum(stats.dropped.values()),
                stats.frames_corrupt, stats.reconnects,
            )  # fmt: skip
        table.add_row(camera_id, *map(str, row), str(depth()))
    return Group(table)


def _summary_table(summary: PipelineSummary) -> Table:
    table = Table(
        "camera", "read", "processed", "fps", "dropped", "corrupt", "reconnects", "latency p50 ms", "p99 ms",
        title=f"{summary.frames_processed} frames in {summary.wall_s:.1f} s",
    )  # fmt: skip
    for c in summary.cameras:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(c.dropped.items()) if v) or "0"
        table.add_row(
            c.camera_id, str(c.frames_read), str(c.frames_processed), f"{c.processed_fps:.1f}", dropped,
            str(c.frames_corrupt), str(c.reconnects),
            "" if c.latency_ms_p50 is None else f"{c.latency_ms_p50:.1f}",
            "" if c.latency_ms_p99 is None else f"{c.latency_ms_p99:.1f}",
        )  # fmt: skip
    return table
