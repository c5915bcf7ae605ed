"""Frame sources: video files, live streams, local cameras and image folders.

:func:`open_source` picks the reader from the uri. Every source yields
:class:`~cvops.video.frames.VideoFrame` records (BGR uint8) in decode order, applies sampling
(every Nth frame or a target rate, counted as ``DropReason.SAMPLING``), skips corrupt frames
(counted in ``stats.frames_corrupt``) and stops promptly when :meth:`close` is called from
another thread.

Opening and failures:

- Nothing is opened by :func:`open_source`: the first open happens when :meth:`frames` starts, in
  the thread that reads the camera, so a slow or dead camera never blocks the caller that sets
  up many of them.
- If that FIRST open fails, :meth:`frames` raises :class:`~cvops.errors.SourceOpenError` with one
  line naming the uri and the reason, for live streams too. A wrong address or a camera that is
  down at start-up is reported at once rather than retried silently forever; the caller decides
  whether to try again later.
- Once a live source (stream, camera) has opened, any later error or end of stream makes it
  reopen with exponential backoff (:class:`ReconnectPolicy`, counted in ``stats.reconnects``)
  until :meth:`close`, or until ``max_attempts`` consecutive attempts failed (then
  :class:`~cvops.errors.SourceOpenError`).
- PyAV's interrupt timeouts bound every blocking call: ``open_timeout_s`` for an open and
  ``read_timeout_s`` for each read, so a dead server never hangs a read and :meth:`close`
  takes effect within about ``read_timeout_s`` (at once while waiting in backoff).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import av

from cvops.errors import ImageReadError, InvalidInputError, SourceOpenError
from cvops.images import IMAGE_SUFFIXES, read_image
from cvops.video.frames import CameraStats, DropReason, FrameSource, VideoFrame

logger = logging.getLogger(__name__)

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "udp"})
_CAMERA_URI = re.compile(r"^camera:(\d+)$")
_DEVICE_PATH = re.compile(r"^/dev/video(\d+)$")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@runtime_checkable
class Reconnectable(Protocol):
    """A source that can be told to drop its connection and reopen it (what a stall watchdog uses)."""

    def request_reconnect(self, silent_for_s: float) -> None:
        """Ask the reading thread to reopen the source: no frame came for the last ``silent_for_s``.

        The current connection is dropped only if it was already open when that silence began;
        one opened since gets its own chance (a request never kills a fresh connection that has
        not had time to deliver its first frame). A no-op for files and folders.
        """
        ...


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff between attempts to reopen a live source.

    Attempt ``k`` (0-based, counted since the last frame that arrived) waits
    ``min(initial_delay_s * factor**k, max_delay_s)`` seconds first.

    Attributes:
        initial_delay_s: Wait before the first attempt, seconds.
        factor: Growth of the wait per failed attempt (>= 1).
        max_delay_s: Longest wait between attempts, seconds.
        max_attempts: Consecutive attempts before giving up (then SourceOpenError); None: forever.
    """

    initial_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 10.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay_s < 0 or self.factor < 1 or self.max_delay_s < self.initial_delay_s:
            got = f"{self.initial_delay_s}, {self.factor}, {self.max_delay_s}"
            raise InvalidInputError(
                f"expected initial_delay_s >= 0, factor >= 1, max_delay_s >= initial_delay_s, got {got}"
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InvalidInputError(f"expected max_attempts >= 1 or None, got {self.max_attempts}")

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (0-based)."""
        return min(self.initial_delay_s * self.factor ** min(attempt, 64), self.max_delay_s)


def open_source(
    uri: str,
    camera_id: str | None = None,
    *,
    every_n: int = 1,
    target_fps: float | None = None,
    realtime: bool = False,
    loop: bool = False,
    reconnect: ReconnectPolicy | None = None,
    open_timeout_s: float = 10.0,
    read_timeout_s: float = 5.0,
    folder_fps: float = 25.0,
) -> FrameSource:
    """Make the source that reads ``uri``; nothing is opened until ``frames()`` starts.

    Args:
        uri: One of: a video file (anything FFmpeg reads); ``rtsp://``, ``rtsps://``, ``http(s)://``,
            ``rtmp://``, ``srt://`` or ``udp://`` stream (live); ``/dev/videoN`` or ``camera:N``
            (a local V4L2 camera, live); a folder of images (sorted by name).
        camera_id: Name of the camera in frames and stats; default: a short name derived from
            the uri (file stem, folder name, ``host-port-path`` of a stream; never credentials).
        every_n: Deliver every Nth decoded frame (1: all).
        target_fps: Deliver about this many frames per second of stream time (by pts); exclusive
            with ``every_n``.
        realtime: Files and folders only: release frames at their pts rate from the start, as a
            live camera would (the source then reports ``is_live``); ignored for live sources.
        loop: Files and folders only: start again at the end (pts keep increasing).
        reconnect: Backoff for live sources after the first open; default ``ReconnectPolicy()``.
        open_timeout_s: Longest wait for one open (connect, handshake, probing), seconds.
        read_timeout_s: Longest wait for one read of a stream, seconds.
        folder_fps: Frame rate an image folder is played at (pts = index / folder_fps).

    Raises:
        InvalidInputError: For an unsupported uri scheme or arguments out of range.
    """
    _check_positive(open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s, folder_fps=folder_fps)
    sampler = _Sampler(every_n, target_fps)
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if scheme in LIVE_SCHEMES or _CAMERA_URI.match(uri) or _DEVICE_PATH.match(uri):
        if loop:
            raise InvalidInputError(f"{_redact(uri)}: loop applies to files and folders, not live sources")
        return AvSource(
            uri,
            camera_id or _default_camera_id(uri),
            sampler=sampler,
            is_live=True,
            reconnect=reconnect or ReconnectPolicy(),
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
        )
    if scheme not in ("", "file"):
        supported = ", ".join(sorted(LIVE_SCHEMES | {"file"}))
        raise InvalidInputError(f"{_redact(uri)}: unsupported scheme {scheme!r}, expected one of {supported}")
    path = Path(urlsplit(uri).path) if scheme == "file" else Path(uri)
    if path.is_dir():
        camera_id = camera_id or _slug(path.name) or "folder"
        return ImageFolderSource(
            path, camera_id, sampler=sampler, fps=folder_fps, realtime=realtime, loop=loop
        )
    return AvSource(
        str(path),
        camera_id or _slug(path.stem) or "file",
        sampler=sampler,
        is_live=False,
        realtime=realtime,
        loop=loop,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
    )


class _End(Enum):
    """Why one pass over an opened container stopped."""

    END_OF_STREAM = "end of stream"
    READ_ERROR = "read error"
    RECONNECT_REQUESTED = "reconnect requested"
    CLOSED = "closed"


class AvSource:
    """A video file, live stream or V4L2 camera decoded by PyAV (FFmpeg). Use :func:`open_source`.

    One reading thread calls :meth:`frames`; :meth:`close` and :meth:`request_reconnect` may be
    called from any thread. ``index`` keeps counting across reconnects and loops; a live
    stream's pts restart with each connection, a looped file's keep increasing.
    """

    def __init__(
        self,
        uri: str,
        camera_id: str,
        *,
        sampler: _Sampler,
        is_live: bool,
        realtime: bool = False,
        loop: bool = False,
        reconnect: ReconnectPolicy | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        """Prepare (open nothing); see :func:`open_source` for the arguments."""
        self.uri = uri
        self.camera_id = camera_id
        self.is_live = is_live or realtime
        self.stats = CameraStats()
        self._should_reconnect = is_live
        self._realtime = realtime and not is_live
        self._loop = loop and not is_live
        self._policy = reconnect or ReconnectPolicy()
        self._sampler = sampler
        self._timeout = (open_timeout_s, read_timeout_s)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._silent_since_s: float | None = None  # start of the silence a reconnect was asked for
        self._opened_at_s = 0.0  # monotonic s the current container was opened
        self._target, self._format, self._options = _av_target(uri, read_timeout_s)
        self._decoded = 0  # frames decoded so far: the next frame's index
        self._failed_attempts = 0  # reopen attempts since the last frame arrived
        self._pts_offset_s = 0.0  # added to pts when a looped file starts again

    def frames(self) -> Iterator[VideoFrame]:
        """Yield frames until the file ends, :meth:`close` is called or reconnecting gives up.

        Raises:
            SourceOpenError: When the first open fails, or when ``max_attempts`` reconnect
                attempts in a row failed.
        """
        if self._closed.is_set():
            return
        container: Any = self._open()
        pacer = _Pacer(self._closed) if self._realtime else None
        try:
            while True:
                end, detail = yield from self._decode(container, pacer)
                container.close()
                container = None
                if end is _End.CLOSED or self._closed.is_set():
                    return
                if self._should_reconnect:
                    container = self._reopen_with_backoff(f"{end.value}{detail}")
                    if container is None:
                        return
                elif end is _End.READ_ERROR:
                    # The rest of a damaged file cannot be demuxed: count it, and end like the file.
                    with self.stats.lock:
                        self.stats.frames_corrupt += 1
                    logger.warning("%s: %s%s; ending the file here", self.camera_id, end.value, detail)
                    return
                elif self._loop and end is _End.END_OF_STREAM:
                    container = self._open()
                else:
                    return
        finally:
            if container is not None:
                container.close()

    def close(self) -> None:
        """Make :meth:`frames` stop within about ``read_timeout_s``.

        The reading thread releases the decoder itself: a container is never closed from another
        thread (FFmpeg's demuxers are not thread-safe).
        """
        self._closed.set()

    def request_reconnect(self, silent_for_s: float) -> None:
        """Drop a live connection that has been silent for ``silent_for_s`` and reopen it.

        Honoured at the next packet or read timeout, and only when the connection was already
        open when the silence began; a no-op for files.
        """
        if self._should_reconnect:
            with self._lock:
                self._silent_since_s = time.monotonic() - silent_for_s

    def _open(self) -> Any:
        """Open the container; raise SourceOpenError naming the uri and the reason."""
        try:
            container = av.open(
                self._target, format=self._format, options=self._options, timeout=self._timeout
            )
        except av.error.ExitError as error:
            raise SourceOpenError(
                f"cannot open {_redact(self.uri)}: no answer in {self._timeout[0]} s"
            ) from error
        except (av.FFmpegError, OSError) as error:
            raise SourceOpenError(f"cannot open {_redact(self.uri)}: {_reason(error)}") from error
        if not container.streams.video:
            container.close()
            raise SourceOpenError(f"cannot open {_redact(self.uri)}: no video stream")
        with self._lock:
            self._opened_at_s = time.monotonic()
            self._silent_since_s = None  # a request made before this open is answered by it
        # Frame threading decodes faster but holds frames back: files only, slices for live.
        container.streams.video[0].thread_type = "SLICE" if self._should_reconnect else "AUTO"
        return container

    def _reopen_with_backoff(self, reason: str) -> Any:
        """Reopen a live source; None when closed meanwhile."""
        while True:
            attempts = self._failed_attempts
            if self._policy.max_attempts is not None and attempts >= self._policy.max_attempts:
                raise SourceOpenError(
                    f"cannot reopen {_redact(self.uri)} after {attempts} attempts: {reason}"
                )
            delay_s = self._policy.delay_s(attempts)
            logger.warning("%s: %s; reconnecting in %.1f s", self.camera_id, reason, delay_s)
            if self._closed.wait(delay_s):
                return None
            self._failed_attempts += 1
            try:
                container = self._open()
            except SourceOpenError as error:
                reason = str(error)
                continue
            with self.stats.lock:
                self.stats.reconnects += 1
            logger.info("%s: reconnected", self.camera_id)
            return container

    def _decode(self, container: Any, pacer: _Pacer | None) -> Generator[VideoFrame, None, tuple[_End, str]]:
        """Yield the frames of one opened container; return why it stopped (and a detail)."""
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        packets = container.demux(stream)
        first_pts_s: float | None = None
        last_pts_s: float | None = None
        try:
            while True:
                if self._closed.is_set():
                    return _End.CLOSED, ""
                if self._is_reconnect_due():
                    return _End.RECONNECT_REQUESTED, ""
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as error:
                    return _End.READ_ERROR, f": {_reason(error)}"
                try:
                    decoded = packet.decode()
                except av.FFmpegError as error:
                    self._count_corrupt(f"undecodable packet ({_reason(error)})")
                    continue
                for av_frame in decoded:
                    index = self._decoded
                    self._decoded += 1
                    if av_frame.is_corrupt:
                        self._count_corrupt(f"frame {index} flagged corrupt by the decoder")
                        continue
                    pts_s = None if av_frame.time is None else float(av_frame.time) + self._pts_offset_s
                    if pts_s is not None:
                        first_pts_s = pts_s if first_pts_s is None else first_pts_s
                        last_pts_s = pts_s
                    if not self._sampler.should_keep(index, pts_s):
                        self.stats.count_drop(DropReason.SAMPLING)
                        continue
                    media_s = pts_s if pts_s is not None else index / (rate or 25.0)
                    if pacer is not None and not pacer.wait_until_due(media_s):
                        return _End.CLOSED, ""
                    captured_at_s = time.monotonic()
                    # One swscale thread: for small frames its thread pool costs more than it saves.
                    image = av_frame.to_ndarray(format="bgr24", threads=1)
                    self._failed_attempts = 0
                    yield VideoFrame(self.camera_id, index, pts_s, captured_at_s, image)
        finally:
            packets.close()
        if self._loop and first_pts_s is not None and last_pts_s is not None:
            # The next pass starts one frame after this one's last frame.
            first_raw_s = first_pts_s - self._pts_offset_s
            self._pts_offset_s = last_pts_s + (1.0 / rate if rate else 0.0) - first_raw_s
        return _End.END_OF_STREAM, ""

    def _is_reconnect_due(self) -> bool:
        with self._lock:
            silent_since_s, self._silent_since_s = self._silent_since_s, None
            return silent_since_s is not None and silent_since_s >= self._opened_at_s

    def _count_corrupt(self, what: str) -> None:
        with self.stats.lock:
            self.stats.frames_corrupt += 1
        logger.debug("%s: skipped %s", self.camera_id, what)


class ImageFolderSource:
    """The image files of one folder, sorted by name, as frames (pts = index / fps).

    Files whose suffix is not an image suffix are ignored; an image file that cannot be read
    (truncated, not an image) is skipped and counted in ``stats.frames_corrupt``.
    """

    def __init__(
        self,
        folder: Path,
        camera_id: str,
        *,
        sampler: _Sampler,
        fps: float = 25.0,
        realtime: bool = False,
        loop: bool = False,
    ) -> None:
        """Prepare (list nothing yet); see :func:`open_source` for the arguments."""
        self.folder = folder
        self.camera_id = camera_id
        self.is_live = realtime
        self.stats = CameraStats()
        self._sampler = sampler
        self._fps = fps
        self._realtime = realtime
        self._loop = loop
        self._closed = threading.Event()

    def frames(self) -> Iterator[VideoFrame]:
        """Yield the readable images until the last one (or forever with ``loop``) or :meth:`close`.

        Raises:
            SourceOpenError: When the folder is missing or holds no image file.
        """
        if self._closed.is_set():
            return
        try:
            files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as error:
            raise SourceOpenError(f"cannot open image folder {self.folder}: {_reason(error)}") from error
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceOpenError(f"cannot open image folder {self.folder}: no image files ({suffixes})")
        pacer = _Pacer(self._closed) if self._realtime else None
        index = 0
        while not self._closed.is_set():
            for path in files:
                if self._closed.is_set():
                    return
                pts_s = index / self._fps
                index += 1
                if not self._sampler.should_keep(index - 1, pts_s):
                    self.stats.count_drop(DropReason.SAMPLING)
                    continue
                try:
                    image = read_image(path)
                except ImageReadError as error:
                    with self.stats.lock:
                        self.stats.frames_corrupt += 1
                    logger.debug("%s: skipped %s", self.camera_id, error)
                    continue
                if pacer is not None and not pacer.wait_until_due(pts_s):
                    return
                yield VideoFrame(self.camera_id, index - 1, pts_s, time.monotonic(), image)
            if not self._loop:
                return

    def close(self) -> None:
        """Make :meth:`frames` stop before its next image."""
        self._closed.set()

    def request_reconnect(self, silent_for_s: float) -> None:
        """Nothing to reconnect: a folder does not stall."""


class _Sampler:
    """Decides which decoded frames are delivered: every Nth, or about ``target_fps`` by pts."""

    def __init__(self, every_n: int = 1, target_fps: float | None = None) -> None:
        if every_n < 1:
            raise InvalidInputError(f"expected every_n >= 1, got {every_n}")
        if target_fps is not None and target_fps <= 0:
            raise InvalidInputError(f"expected target_fps > 0 or None, got {target_fps}")
        if every_n > 1 and target_fps is not None:
            raise InvalidInputError(f"give every_n ({every_n}) or target_fps ({target_fps}), not both")
        self._every_n = every_n
        self._target_fps = target_fps
        self._last_slot: int | None = None

    def should_keep(self, index: int, pts_s: float | None) -> bool:
        """True when frame ``index`` (pts ``pts_s``; None: the clock stands in) is delivered."""
        if self._target_fps is None:
            return index % self._every_n == 0
        time_s = time.monotonic() if pts_s is None else pts_s
        # Slot k holds times [k / fps, (k + 1) / fps): keep the first frame of each slot. The small
        # epsilon keeps exact multiples (pts 0.2 at 5 fps) in their own slot despite rounding.
        slot = math.floor(time_s * self._target_fps + 1e-6)
        if self._last_slot is not None and slot == self._last_slot:
            return False
        if self._last_slot is not None and slot < self._last_slot:
            logger.debug("pts went back from slot %d to %d (reconnect or loop)", self._last_slot, slot)
        self._last_slot = slot
        return True


class _Pacer:
    """Sleeps until each frame is due at its pts rate, counted from the first frame."""

    def __init__(self, closed: threading.Event) -> None:
        self._closed = closed
        self._origin: tuple[float, float] | None = None  # (monotonic s, media s) of the first frame

    def wait_until_due(self, media_s: float) -> bool:
        """Sleep until ``media_s`` is due; False when the source was closed meanwhile."""
        now = time.monotonic()
        if self._origin is None or media_s < self._origin[1]:
            self._origin = (now, media_s)
            return not self._closed.is_set()
        delay_s = self._origin[0] + (media_s - self._origin[1]) - now
        if delay_s <= 0:
            return not self._closed.is_set()
        return not self._closed.wait(delay_s)


def _av_target(uri: str, read_timeout_s: float) -> tuple[str, str | None, dict[str, str]]:
    """PyAV's (file, format, options) for a uri."""
    camera = _CAMERA_URI.match(uri)
    if camera or _DEVICE_PATH.match(uri):
        return (f"/dev/video{camera.group(1)}" if camera else uri), "v4l2", {}
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    socket_timeout_us = str(int(read_timeout_s * 1e6))
    if scheme in ("rtsp", "rtsps"):
        # TCP: no lost packets (smeared frames) behind NAT or on busy links; FFmpeg's own socket
        # timeout on top of PyAV's interrupt gives a clearer error than "immediate exit requested".
        return uri, None, {"rtsp_transport": "tcp", "timeout": socket_timeout_us}
    if scheme in ("http", "https"):
        return uri, None, {"timeout": socket_timeout_us}
    return uri, None, {}


def _default_camera_id(uri: str) -> str:
    """A short name for a live uri: ``video0`` for cameras, ``host-port-path`` for streams."""
    camera = _CAMERA_URI.match(uri) or _DEVICE_PATH.match(uri)
    if camera:
        return f"video{camera.group(1)}"
    parts = urlsplit(uri)
    name = "-".join(str(p) for p in (parts.hostname, parts.port, parts.path.strip("/")) if p)
    return _slug(name) or parts.scheme


def _slug(text: str) -> str:
    return _SLUG_UNSAFE.sub("-", text).strip("-")


def _redact(uri: str) -> str:
    """The uri without its password, for messages and logs."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(error: BaseException) -> str:
    """One line: the OS/FFmpeg reason without the repeated file name."""
    strerror = getattr(error, "strerror", None)
    text = strerror if isinstance(strerror, str) and strerror else str(error)
    return " ".join(text.split()) or type(error).__name__


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise InvalidInputError(f"expected {name} > 0, got {value}")
