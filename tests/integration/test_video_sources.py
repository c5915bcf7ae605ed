"""Real sources: bikes.mp4 through PyAV, an image folder, and an RTSP server that dies and stalls.

The RTSP server is GStreamer's, run by the system Python (``make system-deps`` installs it);
each client reads bikes.mp4 from its start in real time (250 frames, 10 s).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from cvops.errors import SourceOpenError
from cvops.processes import die_with_parent, free_port
from cvops.video.capture import CameraReader
from cvops.video.frames import VideoFrame
from cvops.video.queues import FrameQueue, QueuePolicy
from cvops.video.sources import ReconnectPolicy, open_source
from tests.conftest import fixture_path

pytestmark = pytest.mark.integration

BIKES_FRAMES, BIKES_FPS, BIKES_SHAPE = 250, 25, (272, 640, 3)
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
FAST_BACKOFF = ReconnectPolicy(initial_delay_s=0.2, factor=2.0, max_delay_s=1.0)


@pytest.fixture(scope="module")
def bikes() -> Path:
    return fixture_path("video/bikes.mp4")


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class RtspServer:
    """rtsp_server.py in a child process that can be killed, paused and started again on its port."""

    def __init__(self, video: Path, log: Path) -> None:
        self.video, self.log = video, log
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/stream"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--file", str(self.video)]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=sink, preexec_fn=die_with_parent
            )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready or self.process.stdout.readline().strip() != b"ready":
            self.stop()
            pytest.fail(f"RTSP server not ready (run `make system-deps`): {self.log.read_text()[-1500:]}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a paused server would not die on SIGTERM
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


@pytest.fixture
def rtsp(bikes: Path, tmp_path: Path) -> Iterator[RtspServer]:
    server = RtspServer(bikes, tmp_path / "rtsp-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Camera:
    """A CameraReader on a small drop-oldest queue: the test reads counters and the newest frames."""

    def __init__(self, url: str, stall_timeout_s: float = 5.0, **source_args: object) -> None:
        self.source = open_source(url, reconnect=FAST_BACKOFF, open_timeout_s=3.0, **source_args)
        self.stats = self.source.stats
        self.queue = FrameQueue(8, QueuePolicy.DROP_OLDEST, self.stats)
        self.reader = CameraReader(self.source, self.queue, stall_timeout_s=stall_timeout_s)

    def __enter__(self) -> Camera:
        self.reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.stop()
        self.reader.join(10)

    def wait_frames(self, count: int, timeout_s: float) -> int:
        wait_until(lambda: self.stats.frames_read >= count, timeout_s)
        return self.stats.frames_read

    def newest(self) -> VideoFrame | None:
        frames = []
        while (taken := self.queue.get_nowait()) is not None:
            frames.append(taken)
        return frames[-1] if frames else None


def test_file_yields_every_frame_once_in_order(bikes: Path) -> None:
    source = open_source(str(bikes))
    frames = list(source.frames())
    assert source.camera_id == "bikes"
    assert not source.is_live
    assert [f.index for f in frames] == list(range(BIKES_FRAMES))
    pts = [f.pts_s for f in frames]
    assert all(p is not None for p in pts)
    assert pts[0] == pytest.approx(0.0)
    assert np.all(np.diff(np.asarray(pts, np.float64)) > 0)
    assert pts[-1] == pytest.approx((BIKES_FRAMES - 1) / BIKES_FPS)
    assert all(f.image.shape == BIKES_SHAPE and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].image.flags["C_CONTIGUOUS"]
    assert np.all(np.diff([f.captured_at_s for f in frames]) >= 0)
    assert source.stats.frames_corrupt == 0
    assert sum(source.stats.dropped.values()) == 0


@pytest.mark.parametrize(
    ("sampling", "expected"),
    [
        ({"every_n": 5}, 50),
        ({"target_fps": 5.0}, 50),
        ({"target_fps": 10.0}, 100),
        ({"target_fps": 50.0}, 250),
    ],
    ids=["every-5th", "5-fps", "10-fps", "above-source-rate"],
)
def test_sampling_delivers_the_expected_count(bikes: Path, sampling: dict[str, float], expected: int) -> None:
    source = open_source(str(bikes), **sampling)
    frames = list(source.frames())
    assert len(frames) == expected
    assert source.stats.dropped["sampling"] == BIKES_FRAMES - expected
    gaps = set(np.diff([f.index for f in frames]).tolist())
    assert gaps <= {BIKES_FRAMES // expected, -(-BIKES_FRAMES // expected)}  # evenly spread


def test_realtime_file_is_paced_like_a_camera(bikes: Path) -> None:
    source = open_source(str(bikes), realtime=True)
    assert source.is_live
    frames = source.frames()
    started = time.monotonic()
    taken = [next(frames) for _ in range(51)]  # 50 frame intervals = 2 s at 25 fps
    elapsed_s = time.monotonic() - started
    source.close()
    assert list(frames) == []  # closed: the generator ends
    assert 1.9 <= elapsed_s < 2.6
    assert taken[-1].captured_at_s - taken[0].captured_at_s == pytest.approx(2.0, abs=0.15)


def test_looped_file_keeps_counting_indices_and_pts(bikes: Path) -> None:
    frames_iter = open_source(str(bikes), loop=True, every_n=2).frames()
    frames = [next(frames_iter) for _ in range(200)]  # 400 decoded: 1.6 passes over the file
    assert [f.index for f in frames] == list(range(0, 400, 2))
    assert np.all(np.diff(np.asarray([f.pts_s for f in frames], np.float64)) > 0)
    assert frames[-1].pts_s == pytest.approx(398 / BIKES_FPS)


def test_corrupt_packets_are_skipped_and_counted(bikes: Path, tmp_path: Path) -> None:
    damaged = bytearray(bikes.read_bytes())
    damaged[200_000:204_096] = bytes(range(256)) * 16  # garbage inside the H.264 payload
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(damaged))
    source = open_source(str(path))
    frames = list(source.frames())
    assert source.stats.frames_corrupt >= 1
    assert len(frames) >= BIKES_FRAMES - 10
    assert len(frames) + source.stats.frames_corrupt >= BIKES_FRAMES - 1


def test_image_folder_skips_and_counts_an_unreadable_image(tmp_path: Path) -> None:
    images = [fixture_path("images/bus.jpg"), fixture_path("images/zidane.jpg")]
    images += sorted(fixture_path("coco8/images/val").glob("*.jpg"))[:2]
    for i, image in enumerate(images):
        shutil.copy(image, tmp_path / f"{i * 2:03d}.jpg")
    bus = images[0].read_bytes()
    (tmp_path / "001.jpg").write_bytes(bus[: len(bus) // 2])  # truncated JPEG
    (tmp_path / "notes.txt").write_text("not an image, and not counted")
    source = open_source(str(tmp_path), folder_fps=10.0)
    frames = list(source.frames())
    assert source.camera_id == tmp_path.name
    assert [f.index for f in frames] == [0, 2, 3, 4]  # 001.jpg was index 1
    assert [f.pts_s for f in frames] == pytest.approx([0.0, 0.2, 0.3, 0.4])
    assert all(f.image.ndim == 3 and f.image.shape[2] == 3 for f in frames)
    assert source.stats.frames_corrupt == 1


@pytest.mark.parametrize("kind", ["missing-file", "refused-rtsp", "empty-folder"])
def test_first_open_failure_raises_quickly_naming_the_uri(kind: str, tmp_path: Path) -> None:
    uri = {
        "missing-file": str(tmp_path / "nowhere.mp4"),
        "refused-rtsp": f"rtsp://viewer:secret@127.0.0.1:{free_port()}/stream",
        "empty-folder": str(tmp_path),
    }[kind]
    source = open_source(uri, open_timeout_s=5.0)
    started = time.monotonic()
    with pytest.raises(SourceOpenError) as raised:
        next(iter(source.frames()))
    assert time.monotonic() - started < 2.0
    message = str(raised.value)
    assert "\n" not in message
    assert uri.replace("secret", "***") in message
    assert "secret" not in message


def test_a_camera_that_cannot_open_is_reported_on_its_reader_only(bikes: Path) -> None:
    bad = Camera(f"rtsp://127.0.0.1:{free_port()}/stream")
    good = Camera(str(bikes))
    with bad, good:
        bad.reader.join(5)
        good.reader.join(10)
        assert bad.reader.error is not None
        assert "Connection refused" in bad.reader.error
        assert bad.queue.closed
        assert good.reader.error is None
        assert good.stats.frames_read == BIKES_FRAMES


def test_reader_reconnects_after_the_server_restarts(rtsp: RtspServer) -> None:
    with Camera(rtsp.url) as camera:
        assert camera.wait_frames(25, timeout_s=10) >= 25
        rtsp.stop()
        killed_at = time.monotonic()
        time.sleep(0.5)  # a few refused attempts
        read_while_down = camera.stats.frames_read
        rtsp.start()
        restarted_at = time.monotonic()
        assert camera.wait_frames(read_while_down + 25, timeout_s=15) >= read_while_down + 25
        newest = camera.newest()
    assert camera.stats.reconnects >= 1
    assert newest is not None
    assert newest.captured_at_s > restarted_at > killed_at
    assert newest.index >= read_while_down + 24  # index keeps counting across connections
    assert camera.reader.error is None


def test_watchdog_counts_a_stalled_server_and_the_stream_recovers(rtsp: RtspServer) -> None:
    with Camera(rtsp.url, stall_timeout_s=1.0, read_timeout_s=2.0) as camera:
        assert camera.wait_frames(25, timeout_s=10) >= 25
        rtsp.signal(signal.SIGSTOP)  # the connection stays open but nothing arrives
        assert wait_until(lambda: camera.stats.stalls >= 1, timeout_s=5)
        time.sleep(1.5)  # past the read timeout: the source drops the connection
        rtsp.signal(signal.SIGCONT)
        resumed_at, read_at_resume = time.monotonic(), camera.stats.frames_read
        assert camera.wait_frames(read_at_resume + 25, timeout_s=15) >= read_at_resume + 25
        newest = camera.newest()
    assert camera.stats.stalls >= 1
    assert camera.stats.reconnects >= 1
    assert newest is not None
    assert newest.captured_at_s > resumed_at


def test_close_stops_a_reader_waiting_in_backoff(rtsp: RtspServer) -> None:
    source = open_source(rtsp.url, reconnect=ReconnectPolicy(initial_delay_s=30.0, max_delay_s=30.0))
    queue = FrameQueue(4, QueuePolicy.DROP_OLDEST, source.stats)
    reader = CameraReader(source, queue)
    reader.start()
    try:
        assert wait_until(lambda: source.stats.frames_read >= 5, timeout_s=10)
        rtsp.stop()  # the source sees the end of the stream and waits 30 s before reopening
        time.sleep(0.5)
        stopping = threading.Thread(target=reader.stop)
        started = time.monotonic()
        stopping.start()
        reader.join(5)
        assert not reader.is_alive
        assert time.monotonic() - started < 1.0
    finally:
        reader.stop()
        reader.join(5)


def test_http_stream_is_read_as_a_live_source(bikes: Path, tmp_path: Path) -> None:
    """MPEG-TS over HTTP from a server on loopback (as an encoder or camera gateway would serve it)."""
    import av

    with av.open(str(bikes)) as mp4, av.open(str(tmp_path / "bikes.ts"), "w", format="mpegts") as ts:
        video = mp4.streams.video[0]
        stream = ts.add_stream_from_template(video)
        for packet in mp4.demux(video):
            if packet.dts is not None:
                packet.stream = stream
                ts.mux(packet)
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        assert wait_until(lambda: _accepts(port), 10.0)
        source = open_source(f"http://127.0.0.1:{port}/bikes.ts", "http-cam")
        frames = source.frames()
        received = [next(frames) for _ in range(60)]
        source.close()
        assert source.is_live
        assert [f.index for f in received] == list(range(60))
        assert received[0].image.shape == (272, 640, 3)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
