"""One thread per camera: read a source into a bounded queue, and watch it for stalls.

The reader thread pulls ``source.frames()`` and puts every frame into the camera's
:class:`~cvops.video.queues.FrameQueue`; the queue's policy decides what is lost when consumers
fall behind. When the source ends (a file) or fails (a camera that cannot be opened), the queue
is closed so consumers drain it and stop; the failure is kept on :attr:`CameraReader.error`
instead of escaping the thread, so one bad camera never stops the others.

The watchdog thread (live sources only) notices when the reader has waited ``stall_timeout_s``
for the source without a frame arriving, counts one stall per silent spell in
``stats.stalls`` and asks the source to reconnect (:meth:`~cvops.video.sources.Reconnectable.
request_reconnect`), again every ``stall_timeout_s`` while the silence lasts. Time the reader
spends waiting for room in a blocking queue is not a stall: the consumer is slow, not the camera.
A read that blocks inside FFmpeg ends by itself after the source's ``read_timeout_s`` and then
reconnects; the watchdog covers what a read timeout cannot see (packets that arrive but decode
to no frame, a stream that sends only keep-alives, a read timeout longer than the stall budget).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator

from cvops.errors import CvopsError, InvalidInputError
from cvops.video.frames import FrameSource, VideoFrame
from cvops.video.queues import FrameQueue
from cvops.video.sources import Reconnectable

logger = logging.getLogger(__name__)


class CameraReader:
    """Reads one source into one queue on a daemon thread, with a stall watchdog for live sources.

    Attributes:
        source: The camera.
        queue: Where its frames go; closed when reading ends for any reason.
        error: One line saying why reading failed (e.g. the source could not be opened); None
            while reading or after a normal end.
    """

    def __init__(self, source: FrameSource, queue: FrameQueue, stall_timeout_s: float = 5.0) -> None:
        """Prepare the threads (call :meth:`start`).

        Args:
            source: The camera; its ``stats`` receive ``frames_read`` and ``stalls``.
            queue: The bounded queue its frames are put into (built on the same ``stats``).
            stall_timeout_s: Seconds without a frame from a live source before the watchdog
                counts a stall and forces a reconnect.
        """
        if stall_timeout_s <= 0:
            raise InvalidInputError(f"expected stall_timeout_s > 0, got {stall_timeout_s}")
        self.source = source
        self.queue = queue
        self.error: str | None = None
        self._stall_timeout_s = stall_timeout_s
        self._done = threading.Event()  # set by stop() or when the reader thread ends
        self._lock = threading.Lock()
        self._waiting_since: float | None = None  # monotonic s the reader began waiting on the source
        self._is_stalled = False
        name = f"camera-{source.camera_id}"
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._watchdog = (
            threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)
            if source.is_live
            else None
        )

    def start(self) -> None:
        """Start reading (and watching a live source)."""
        with self._lock:
            self._waiting_since = time.monotonic()
        self._reader.start()
        if self._watchdog is not None:
            self._watchdog.start()

    def stop(self) -> None:
        """Close the source and the queue; the threads end within about the source's read timeout."""
        self._done.set()
        self.source.close()
        self.queue.close()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the threads to end (at most ``timeout_s`` seconds in all; None: no limit)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in (self._reader, self._watchdog):
            if thread is None or not thread.is_alive():
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def is_alive(self) -> bool:
        """True while the reader thread runs."""
        return self._reader.is_alive()

    def _read(self) -> None:
        stats = self.source.stats
        frames: Iterator[VideoFrame] | None = None
        try:
            frames = self.source.frames()
            for frame in frames:
                with self._lock:
                    self._waiting_since = None
                    self._is_stalled = False
                with stats.lock:
                    stats.frames_read += 1
                if not self.queue.put(frame) and self.queue.closed:
                    break
                with self._lock:
                    self._waiting_since = time.monotonic()
        except (CvopsError, OSError) as error:
            self.error = " ".join(str(error).split()) or type(error).__name__
            logger.warning("%s: reading stopped: %s", self.source.camera_id, self.error)
        finally:
            if isinstance(frames, Generator):
                frames.close()  # releases the decoder in this thread when the queue was closed first
            self._done.set()
            self.queue.close()

    def _watch(self) -> None:
        poll_s = min(self._stall_timeout_s / 4, 0.5)
        while not self._done.wait(poll_s):
            now = time.monotonic()
            with self._lock:
                since = self._waiting_since
                if since is None or now - since < self._stall_timeout_s:
                    continue
                self._waiting_since = now  # ask again after another stall_timeout_s of silence
                is_new_stall = not self._is_stalled
                self._is_stalled = True
            if is_new_stall:
                with self.source.stats.lock:
                    self.source.stats.stalls += 1
                logger.warning(
                    "%s: no frame for %.1f s; forcing a reconnect", self.source.camera_id, now - since
                )
            if isinstance(self.source, Reconnectable):
                self.source.request_reconnect(now - since)
