"""Replay frames through the canary router over HTTP and summarize each variant's answers.

Frames (from a video file or an image folder) are JPEG-encoded once and sent as KServe v2
requests at a set rate with a set number of requests in flight. The router names the variant
that answered in ``x-cvops-variant``; its shadow mirroring compares both models on the same
frames, read back from ``/router/stats``.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import httpx
import numpy as np

from cvops.contracts.wire import FrameResult
from cvops.errors import InvalidInputError, RemoteDetectorError
from cvops.rollout.statistics import (
    Interval,
    bootstrap_percentile,
    bootstrap_percentile_difference,
    ks_statistic,
)
from cvops.video.sources import open_source

VARIANT_HEADER = "x-cvops-variant"
VARIANTS = ("champion", "challenger")
MODEL_NAME = "detector"

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """How frames are replayed.

    Attributes:
        max_frames: Frames read from the source (a folder shorter than this is looped).
        rate_per_s: Requests started per second (None: as fast as ``concurrency`` allows).
        concurrency: Requests in flight at once.
        timeout_s: Limit of one request, seconds.
        every_n: Use every Nth frame of a video.
        jpeg_quality: JPEG quality of the frames sent, 1 to 100.
    """

    max_frames: int = 50
    rate_per_s: float | None = 20.0
    concurrency: int = 2
    timeout_s: float = 30.0
    every_n: int = 1
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        """Reject out-of-range values with what was expected."""
        if self.max_frames < 1 or self.concurrency < 1 or self.every_n < 1:
            got = f"{self.max_frames}, {self.concurrency}, {self.every_n}"
            raise InvalidInputError(f"max_frames, concurrency, every_n: expected >= 1, got {got}")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise InvalidInputError(f"rate_per_s: expected > 0 or None, got {self.rate_per_s}")
        if self.timeout_s <= 0 or not 1 <= self.jpeg_quality <= 100:
            got = f"{self.timeout_s}, {self.jpeg_quality}"
            raise InvalidInputError(f"timeout_s > 0 and jpeg_quality in [1, 100] expected, got {got}")


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One replayed request.

    Attributes:
        frame_index: 0-based position of the frame in the replay.
        variant: ``champion`` or ``challenger`` (the router's header); empty when it failed
            before the router answered.
        status: HTTP status; 0 for a transport error.
        latency_ms: Client-side wall time of the request.
        scores: Scores of the detections answered.
    """

    frame_index: int
    variant: str
    status: int
    latency_ms: float
    scores: tuple[float, ...]


def read_frames(source: str, config: ReplayConfig) -> list[bytes]:
    """Read up to ``config.max_frames`` frames from a video file or image folder as JPEG bytes.

    Raises:
        InvalidInputError: When the source gives no frame.
        SourceOpenError: When it cannot be opened.
    """
    reader = open_source(source, every_n=config.every_n, loop=True)
    try:
        frames = [
            _jpeg(frame.image, config.jpeg_quality)
            for frame in itertools.islice(reader.frames(), config.max_frames)
        ]
    finally:
        reader.close()
    if not frames:
        raise InvalidInputError(f"{source}: expected frames to replay, got none")
    return frames


def _jpeg(image: np.ndarray[Any, Any], quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidInputError(f"JPEG encoding failed for a frame of shape {image.shape}")
    return bytes(data.tobytes())


def check_reachable(url: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`~cvops.errors.RemoteDetectorError` unless ``url``'s readiness endpoint answers 200."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/v2/health/ready", timeout=timeout_s)
    except httpx.TransportError as error:
        raise RemoteDetectorError(f"{url}: server not reachable ({type(error).__name__}: {error})") from error
    if response.status_code != 200:
        raise RemoteDetectorError(f"{url}: server not ready: HTTP {response.status_code}")


def replay_frames(
    url: str, frames: Sequence[bytes], config: ReplayConfig, on_progress: ProgressCallback | None = None
) -> tuple[list[ReplayRecord], float]:
    """Send every frame through the router; return the records (in frame order) and the wall time.

    Raises:
        RemoteDetectorError: When the router is not reachable before the replay starts.
    """
    check_reachable(url)
    endpoint = f"{url.rstrip('/')}/v2/models/{MODEL_NAME}/infer"
    done = itertools.count(1)
    lock = threading.Lock()
    start = time.monotonic()
    with httpx.Client(timeout=config.timeout_s) as client, ThreadPoolExecutor(config.concurrency) as pool:

        def send(index: int) -> ReplayRecord:
            if config.rate_per_s is not None:
                time.sleep(max(0.0, start + index / config.rate_per_s - time.monotonic()))
            record = _request(client, endpoint, index, frames[index])
            if on_progress is not None:
                with lock:
                    on_progress(next(done), len(frames))
            return record

        records = list(pool.map(send, range(len(frames))))
    return records, time.monotonic() - start


def _request(client: httpx.Client, endpoint: str, index: int, jpeg: bytes) -> ReplayRecord:
    body = {
        "inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(jpeg).decode()]}
        ]
    }
    sent = time.perf_counter()
    try:
        response = client.post(endpoint, json=body)
    except httpx.TransportError:
        return ReplayRecord(index, "", 0, (time.perf_counter() - sent) * 1e3, ())
    latency_ms = (time.perf_counter() - sent) * 1e3
    variant = response.headers.get(VARIANT_HEADER, "")
    if response.status_code != 200:
        return ReplayRecord(index, variant, response.status_code, latency_ms, ())
    try:
        (output,) = [o for o in response.json()["outputs"] if o["name"] == "results"]
        results = [FrameResult.model_validate_json(item) for item in output["data"]]
    except (ValueError, KeyError, TypeError):
        return ReplayRecord(index, variant, -1, latency_ms, ())  # answered, but not our contract
    scores = tuple(d.score for result in results for d in result.detections)
    return ReplayRecord(index, variant, 200, latency_ms, scores)


def read_router_stats(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Return the router's ``/router/stats`` (split, breakers, shadow agreement means)."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/router/stats", timeout=timeout_s)
    except httpx.TransportError as error:
        raise RemoteDetectorError(f"{url}: router not reachable ({type(error).__name__})") from error
    if response.status_code != 200:
        raise RemoteDetectorError(f"{url}/router/stats: HTTP {response.status_code}: not a canary router")
    stats: dict[str, Any] = response.json()
    return stats


def wait_for_shadow(url: str, before_frames: int, expected: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll the router's stats until ``expected`` new shadow comparisons arrived (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    stats = read_router_stats(url)
    while time.monotonic() < deadline and stats["shadow"]["frames"] - before_frames < expected:
        time.sleep(0.2)
        stats = read_router_stats(url)
    return stats


@dataclass(frozen=True, slots=True, eq=False)
class LiveComparison:
    """What replayed traffic says about the challenger.

    Attributes:
        frames: Requests sent.
        wall_s: Wall time of the replay.
        requests: Answered (HTTP 200) requests per variant.
        errors: Failed requests per variant (``unknown``: no variant named).
        p50_ms: Median latency per variant.
        p99_ms: p99 latency per variant with its request-bootstrap interval.
        p99_delta_ms: Challenger minus champion p99 with its interval (None without both).
        throughput_per_s: Answered requests per second of replay, per variant and ``total``.
        mean_score: Mean detection score per variant.
        detections_per_frame: Mean boxes per answered frame, per variant.
        score_ks: KS statistic between the variants' detection scores.
        mean_score_shift: Challenger minus champion mean score.
        shadow: The router's shadow agreement: ``frames`` compared and the ``mean`` of
            matched_fraction, mean_iou, class_agreement and score_shift.
    """

    frames: int
    wall_s: float
    requests: dict[str, int]
    errors: dict[str, int]
    p50_ms: dict[str, float]
    p99_ms: dict[str, Interval]
    p99_delta_ms: Interval | None
    throughput_per_s: dict[str, float]
    mean_score: dict[str, float]
    detections_per_frame: dict[str, float]
    score_ks: float | None
    mean_score_shift: float | None
    shadow: dict[str, Any]

    @property
    def challenger_error_rate(self) -> float:
        """Return the failed share of the requests the challenger was chosen for."""
        sent = self.requests.get("challenger", 0) + self.errors.get("challenger", 0)
        return self.errors.get("challenger", 0) / sent if sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as JSON-ready data."""
        return {
            "frames": self.frames,
            "wall_s": self.wall_s,
            "requests": self.requests,
            "errors": self.errors,
            "challenger_error_rate": self.challenger_error_rate,
            "p50_ms": self.p50_ms,
            "p99_ms": {k: v.as_dict() for k, v in self.p99_ms.items()},
            "p99_delta_ms": None if self.p99_delta_ms is None else self.p99_delta_ms.as_dict(),
            "throughput_per_s": self.throughput_per_s,
            "mean_score": self.mean_score,
            "detections_per_frame": self.detections_per_frame,
            "score_ks": self.score_ks,
            "mean_score_shift": self.mean_score_shift,
            "shadow": self.shadow,
        }


def summarize_replay(
    records: Sequence[ReplayRecord],
    wall_s: float,
    shadow: dict[str, Any],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> LiveComparison:
    """Summarize replayed requests per variant, with request-bootstrap intervals of p99."""
    wall_s = max(wall_s, 1e-9)
    answered = {v: [r for r in records if r.variant == v and r.status == 200] for v in VARIANTS}
    errors: dict[str, int] = {}
    for record in records:
        if record.status != 200:
            key = record.variant or "unknown"
            errors[key] = errors.get(key, 0) + 1
    latencies = {v: np.array([r.latency_ms for r in answered[v]]) for v in VARIANTS}
    scores = {v: np.array([s for r in answered[v] for s in r.scores]) for v in VARIANTS}
    measured = [v for v in VARIANTS if latencies[v].size]
    p99 = {v: bootstrap_percentile(latencies[v], 99, n_resamples, confidence, seed) for v in measured}
    p99_delta = None
    if len(measured) == 2:
        p99_delta = bootstrap_percentile_difference(
            latencies["challenger"], latencies["champion"], 99, n_resamples, confidence, seed
        )
    has_scores = all(scores[v].size for v in VARIANTS)
    total = sum(len(a) for a in answered.values())
    return LiveComparison(
        frames=len(records),
        wall_s=wall_s,
        requests={v: len(answered[v]) for v in VARIANTS},
        errors=errors,
        p50_ms={v: float(np.percentile(latencies[v], 50)) for v in measured},
        p99_ms=p99,
        p99_delta_ms=p99_delta,
        throughput_per_s={**{v: len(answered[v]) / wall_s for v in VARIANTS}, "total": total / wall_s},
        mean_score={v: float(scores[v].mean()) for v in VARIANTS if scores[v].size},
        detections_per_frame={v: float(scores[v].size / len(answered[v])) for v in measured},
        score_ks=ks_statistic(scores["challenger"], scores["champion"]) if has_scores else None,
        mean_score_shift=float(scores["challenger"].mean() - scores["champion"].mean())
        if has_scores
        else None,
        shadow=shadow,
    )
