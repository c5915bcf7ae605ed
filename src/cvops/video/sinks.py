"""Where processed frames go: JSONL results, MOTChallenge tracks, annotated MP4s, active-learning samples.

Every sink takes the frames of all cameras from one thread and keeps its per-camera state (files,
encoders, counters) itself. Per-camera files are named by :func:`camera_file_stem`. A frame whose
pixels a sink cannot use (not ``(H, W, 3)`` uint8) is skipped and counted in the sink's
``frames_skipped`` (the sinks that use pixels) rather than stopping the pipeline; a failed write
raises :class:`~cvops.errors.CvopsError` naming the file. ``close()`` flushes everything, may be
called more than once, and is what the pipeline calls on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import IO, Protocol

import av
import cv2
import numpy as np

from cvops.annotate import draw_detections
from cvops.contracts.wire import FrameResult
from cvops.detection.types import Detections
from cvops.errors import CvopsError, InvalidInputError
from cvops.video.frames import ImageArray, VideoFrame

logger = logging.getLogger(__name__)

DEFAULT_VIDEO_FPS = 25.0
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# 60000 ticks per second: a whole number of ticks per frame at 24, 25, 30, 50, 60 and 30000/1001 fps,
# and under MPEG-4 Part 2's 65535 limit on the time-base denominator (the mpeg4 fallback).
_VIDEO_TIME_BASE = Fraction(1, 60_000)
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SAMPLE_STEM = re.compile(r"[0-9]{9,}")  # CropSink's zero-padded frame index
# 7 significant digits, as cvops.tracking.mot_files writes: every float32 value reads back exactly.
_MOT_NUMBER = "{:.7g}"


class Sink(Protocol):
    """Receives every processed frame of every camera, from one thread."""

    def write(self, frame: VideoFrame, result: FrameResult, detections: Detections) -> None:
        """Record one processed frame: its pixels, its JSON result and the detections behind it.

        Raises:
            CvopsError: When the sink cannot write its file (the message names the file).
        """
        ...

    def close(self) -> None:
        """Flush and release everything; safe to call again (it then does nothing)."""
        ...


def camera_file_stem(camera_id: str) -> str:
    """Return a file-name-safe stem for a camera: the id itself when safe, else a cleaned id plus a hash.

    Safe ids (letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit, up to 128
    characters) map to themselves. Anything else (``rtsp://host/1``, ``a/b``) has each unsafe run
    replaced by ``_`` and 8 hex digits of its SHA-1 appended, so distinct ids do not share a file.
    """
    if _SAFE_STEM.fullmatch(camera_id):
        return camera_id
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", camera_id).strip("._-")[:64] or "camera"
    return f"{cleaned}-{hashlib.sha1(camera_id.encode(), usedforsecurity=False).hexdigest()[:8]}"


class JsonlSink:
    """Appends one :class:`~cvops.contracts.wire.FrameResult` JSON per line to one file (all cameras).

    Lines reach the operating system every ``flush_every_n`` frames, or at the first frame written
    ``flush_interval_s`` after the previous flush, and on :meth:`close`: a killed process loses at
    most ``flush_every_n - 1`` lines (no fsync: a power cut may lose what the OS had not written).
    """

    def __init__(
        self,
        path: Path,
        *,
        flush_every_n: int = 100,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open ``path`` for appending, creating its folder.

        Args:
            path: The JSONL file; an existing file is appended to.
            flush_every_n: Flush after this many unflushed lines (>= 1).
            flush_interval_s: Flush when a line comes this long after the last flush (> 0).
            clock: Monotonic seconds; injectable for tests.

        Raises:
            InvalidInputError: When a flush setting is out of range.
            CvopsError: When the file cannot be opened.
        """
        self.path = path
        self._file = _LineFile(path, "a", flush_every_n, flush_interval_s, clock)

    def write(self, frame: VideoFrame, result: FrameResult, detections: Detections) -> None:
        """Append ``result`` as one JSON line (``frame`` and ``detections`` are not used)."""
        self._file.write(result.model_dump_json() + "\n")

    def close(self) -> None:
        """Flush and close the file; later calls do nothing."""
        self._file.close()


class MotSink:
    """Streams tracks as MOTChallenge results, one ``<folder>/<camera stem>.txt`` per camera.

    Each line is ``frame,id,x,y,w,h,score,-1,-1,-1`` (the format of
    :func:`cvops.tracking.mot_files.write_mot_results`): ``frame`` is ``VideoFrame.index + 1``,
    ``x, y`` the box's top-left corner in pixels. Only boxes with a track id >= 1 are written;
    frames whose detections carry no track ids write nothing. A camera's file is created (replacing
    one from an earlier run) at its first frame and flushed as :class:`JsonlSink` does.
    """

    def __init__(
        self,
        folder: Path,
        *,
        flush_every_n: int = 100,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create ``folder``; files open at each camera's first frame.

        Args:
            folder: Where the per-camera ``.txt`` files go.
            flush_every_n: Flush a camera's file after this many frames with rows (>= 1).
            flush_interval_s: Flush when rows come this long after that file's last flush (> 0).
            clock: Monotonic seconds; injectable for tests.

        Raises:
            InvalidInputError: When a flush setting is out of range.
            CvopsError: When the folder cannot be created.
        """
        _check_flush_settings(flush_every_n, flush_interval_s)
        self.folder = folder
        self._flush_every_n = flush_every_n
        self._flush_interval_s = flush_interval_s
        self._clock = clock
        self._files: dict[str, _LineFile] = {}
        self._is_closed = False
        _make_folder(folder)

    def write(self, frame: VideoFrame, result: FrameResult, detections: Detections) -> None:
        """Append the tracked boxes of ``detections`` to the camera's file (``result`` is not used)."""
        _check_open(self._is_closed, self)
        file = self._files.get(frame.camera_id)
        if file is None:
            path = self.folder / f"{camera_file_stem(frame.camera_id)}.txt"
            file = _LineFile(path, "w", self._flush_every_n, self._flush_interval_s, self._clock)
            self._files[frame.camera_id] = file
        if detections.track_ids is None:
            return
        kept = np.flatnonzero(detections.track_ids >= 1)
        if kept.size == 0:
            return
        number = frame.index + 1
        lines = [
            _mot_line(number, track_id, box, score)
            for track_id, box, score in zip(
                detections.track_ids[kept].tolist(),
                detections.xyxy[kept].tolist(),
                detections.scores[kept].tolist(),
                strict=True,
            )
        ]
        file.write("".join(lines))

    def close(self) -> None:
        """Flush and close every camera's file; later calls do nothing."""
        if self._is_closed:
            return
        self._is_closed = True
        _close_all(file.close for file in self._files.values())


class AnnotatedVideoSink:
    """Writes an annotated MP4 per camera, ``<folder>/<camera stem>.mp4``.

    Boxes, class names, scores and track ids (``name #id``) are drawn with
    :func:`cvops.annotate.draw_detections`. Video is H.264 (``libx264``) when PyAV's FFmpeg has it,
    else MPEG-4 Part 2 (``mpeg4``); yuv420p. The size is the camera's first frame cropped to even
    width and height (yuv420p needs them); later frames of another size are resized to it.

    Timing: a frame's pts is its ``pts_s`` minus the camera's first ``pts_s`` (so sampled or dropped
    frames keep real-time playback), or ``index / fps`` for frames without ``pts_s``; a pts that does
    not increase (a stream that restarted) is moved one tick after the previous frame.

    The MP4 index is written by :meth:`close`: a process killed before it leaves unreadable files.
    """

    def __init__(
        self,
        folder: Path,
        fps: float | None = None,
        *,
        codec: str | None = None,
        preset: str = "veryfast",
        crf: int = 23,
    ) -> None:
        """Create ``folder``; each camera's encoder opens at its first frame.

        Args:
            folder: Where the per-camera ``.mp4`` files go (an existing file is replaced).
            fps: Frame rate in the stream header and for timing frames without ``pts_s``;
                None means 25.
            codec: Force an encoder (``libx264`` or ``mpeg4``); None picks as described above.
            preset: x264 speed preset (``ultrafast`` ... ``veryslow``); ignored by ``mpeg4``.
            crf: x264 constant rate factor, 0 (lossless) to 51 (worst); ignored by ``mpeg4``.

        Raises:
            InvalidInputError: When ``fps``, ``crf`` or ``preset`` is out of range or the codec is
                unavailable.
            CvopsError: When the folder cannot be created.
        """
        if fps is not None and not 0.0 < fps <= 1000.0:
            raise InvalidInputError(f"fps: expected a value in (0, 1000], got {fps}")
        if not 0 <= crf <= 51:
            raise InvalidInputError(f"crf: expected a value in [0, 51], got {crf}")
        if preset not in X264_PRESETS:
            raise InvalidInputError(f"preset: expected one of {', '.join(X264_PRESETS)}, got {preset!r}")
        self.codec = codec or ("libx264" if "libx264" in av.codecs_available else "mpeg4")
        if not _is_video_encoder(self.codec):
            raise InvalidInputError(f"codec: expected a video encoder of PyAV's FFmpeg, got {self.codec!r}")
        self.folder = folder
        self.fps = fps or DEFAULT_VIDEO_FPS
        self.frames_skipped: Counter[str] = Counter()
        self._options: dict[str, object] = (
            {"preset": preset, "crf": str(crf)} if self.codec == "libx264" else {}
        )
        self._videos: dict[str, _CameraVideo] = {}
        self._failed: set[str] = set()
        self._is_closed = False
        _make_folder(folder)

    def write(self, frame: VideoFrame, result: FrameResult, detections: Detections) -> None:
        """Draw ``detections`` on the frame and encode it into the camera's video.

        Raises:
            CvopsError: When the encoder or file fails; that camera's video is then closed and
                its later frames are skipped.
        """
        _check_open(self._is_closed, self)
        camera_id = frame.camera_id
        if camera_id in self._failed:
            self.frames_skipped[camera_id] += 1
            return
        problem = _image_problem(frame.image, min_side=2)
        if problem is not None:
            _count_skip(self.frames_skipped, camera_id, frame.index, problem)
            return
        video = self._videos.get(camera_id)
        try:
            if video is None:
                height, width = frame.image.shape[:2]
                path = self.folder / f"{camera_file_stem(camera_id)}.mp4"
                video = _CameraVideo(path, width & ~1, height & ~1, self.fps, self.codec, self._options)
                self._videos[camera_id] = video
            video.encode(draw_detections(frame.image, _with_track_labels(detections)), frame)
        except CvopsError:
            self._failed.add(camera_id)
            broken = self._videos.pop(camera_id, None)
            if broken is not None:
                broken.abandon()
            raise

    def close(self) -> None:
        """Flush every encoder and finish every MP4; later calls do nothing."""
        if self._is_closed:
            return
        self._is_closed = True
        _close_all(video.close for video in self._videos.values())


class CropSink:
    """Samples frames and box crops of every camera into an active-learning pool.

    Every ``every_n``-th frame a camera hands to the sink (its 1st, ``every_n + 1``-th, ...) becomes
    a sample in ``<folder>/<camera stem>/``, named by its zero-padded frame index ``<index>``:

    - ``<index>.jpg``: the whole frame, unannotated (when ``should_save_frames``);
    - ``<index>_<k>.jpg``: the crop of ``result.detections[k]``, padded by ``crop_margin`` of the
      box size on each side, for up to ``max_per_frame`` boxes scoring >= ``min_score``, best first
      (when ``should_save_crops``);
    - ``<index>.json``: the :class:`~cvops.contracts.wire.FrameResult`, written last, so a sample
      whose ``.json`` exists is complete.

    Each file is written to a temporary name and renamed, so readers never see half a file.

    Bound: a camera keeps at most ``max_samples_per_camera`` samples, hence at most
    ``max_samples_per_camera * (2 + max_per_frame)`` files. The newest are kept: when a new
    sample exceeds the bound, the oldest sample's files are deleted (its ``.json`` first). The
    pool thus always holds the latest conditions of each camera for the selection step; samples
    left by an earlier run count toward the bound (oldest by modification time go first).
    """

    def __init__(
        self,
        folder: Path,
        *,
        every_n: int = 30,
        min_score: float = 0.25,
        max_per_frame: int = 8,
        max_samples_per_camera: int = 1000,
        should_save_frames: bool = True,
        should_save_crops: bool = True,
        crop_margin: float = 0.1,
        jpeg_quality: int = 95,
    ) -> None:
        """Create ``folder``; camera folders are made at their first sample.

        Args:
            folder: Root of the pool.
            every_n: Sample one frame in this many frames handed to the sink, per camera (>= 1).
            min_score: Crop only boxes scoring at least this, in [0, 1].
            max_per_frame: Crop at most this many boxes per sample (>= 0).
            max_samples_per_camera: Keep at most this many samples per camera (>= 1).
            should_save_frames: Write the whole frame of each sample.
            should_save_crops: Write the box crops of each sample.
            crop_margin: Context around each crop, as a fraction of the box width/height (>= 0).
            jpeg_quality: JPEG quality, 1 to 100.

        Raises:
            InvalidInputError: When a setting is out of range.
            CvopsError: When the folder cannot be created.
        """
        checks = (
            ("every_n", every_n >= 1, ">= 1", every_n),
            ("min_score", 0.0 <= min_score <= 1.0, "in [0, 1]", min_score),
            ("max_per_frame", max_per_frame >= 0, ">= 0", max_per_frame),
            ("max_samples_per_camera", max_samples_per_camera >= 1, ">= 1", max_samples_per_camera),
            ("crop_margin", crop_margin >= 0.0, ">= 0", crop_margin),
            ("jpeg_quality", 1 <= jpeg_quality <= 100, "in [1, 100]", jpeg_quality),
        )
        for name, is_valid, expected, value in checks:
            if not is_valid:
                raise InvalidInputError(f"{name}: expected a value {expected}, got {value}")
        self.folder = folder
        self.every_n = every_n
        self.min_score = min_score
        self.max_per_frame = max_per_frame
        self.max_samples_per_camera = max_samples_per_camera
        self.should_save_frames = should_save_frames
        self.should_save_crops = should_save_crops
        self.crop_margin = crop_margin
        self.frames_skipped: Counter[str] = Counter()
        self._jpeg_params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self._frames_seen: Counter[str] = Counter()
        # Per camera: sample stem -> None, oldest first (an ordered set).
        self._samples: dict[str, OrderedDict[str, None]] = {}
        self._is_closed = False
        _make_folder(folder)

    def write(self, frame: VideoFrame, result: FrameResult, detections: Detections) -> None:
        """Write a sample when the camera's frame count falls on ``every_n``; evict past the bound."""
        _check_open(self._is_closed, self)
        camera_id = frame.camera_id
        seen = self._frames_seen[camera_id]
        self._frames_seen[camera_id] = seen + 1
        if seen % self.every_n:
            return
        problem = _image_problem(frame.image, min_side=1)
        if problem is not None:
            _count_skip(self.frames_skipped, camera_id, frame.index, problem)
            return
        camera_dir = self.folder / camera_file_stem(camera_id)
        samples = self._samples.get(camera_id)
        if samples is None:
            _make_folder(camera_dir)
            samples = self._samples[camera_id] = _existing_samples(camera_dir)
        stem = f"{frame.index:09d}"
        if stem in samples:  # the same index again (a restarted source): replace that sample
            _delete_sample(camera_dir, stem)
            del samples[stem]
        if self.should_save_frames:
            _write_atomic(camera_dir / f"{stem}.jpg", self._encode_jpeg(frame.image))
        if self.should_save_crops:
            for k, crop in self._crops(frame.image, detections):
                _write_atomic(camera_dir / f"{stem}_{k}.jpg", self._encode_jpeg(crop))
        _write_atomic(camera_dir / f"{stem}.json", result.model_dump_json().encode())
        samples[stem] = None
        while len(samples) > self.max_samples_per_camera:
            oldest, _ = samples.popitem(last=False)
            _delete_sample(camera_dir, oldest)

    def close(self) -> None:
        """Nothing is buffered (each file is complete when written); later calls do nothing."""
        self._is_closed = True

    def _crops(self, image: ImageArray, detections: Detections) -> list[tuple[int, ImageArray]]:
        """Return (detection position, crop) of the best boxes scoring >= min_score."""
        candidates = np.flatnonzero(detections.scores >= self.min_score)
        order = candidates[np.argsort(-detections.scores[candidates], kind="stable")][: self.max_per_frame]
        height, width = image.shape[:2]
        crops = []
        for k in order.tolist():
            x1, y1, x2, y2 = detections.xyxy[k].tolist()
            pad_x, pad_y = (x2 - x1) * self.crop_margin, (y2 - y1) * self.crop_margin
            left, top = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
            right, bottom = min(int(np.ceil(x2 + pad_x)), width), min(int(np.ceil(y2 + pad_y)), height)
            if right > left and bottom > top:  # boxes wholly outside the image give no crop
                crops.append((k, image[top:bottom, left:right]))
        return crops

    def _encode_jpeg(self, image: ImageArray) -> bytes:
        is_encoded, buffer = cv2.imencode(".jpg", image, self._jpeg_params)
        if not is_encoded:
            raise CvopsError(f"could not encode a {image.shape} image as JPEG")
        return buffer.tobytes()


class _LineFile:
    """A text file written line by line, flushed every N writes or after an interval."""

    def __init__(
        self, path: Path, mode: str, every_n: int, interval_s: float, clock: Callable[[], float]
    ) -> None:
        _check_flush_settings(every_n, interval_s)
        self.path = path
        self._every_n = every_n
        self._interval_s = interval_s
        self._clock = clock
        self._pending = 0
        self._last_flush_s = clock()
        _make_folder(path.parent)
        try:
            self._file: IO[str] | None = path.open(mode, encoding="utf-8", newline="\n")
        except OSError as error:
            raise _io_error(path, "open", error) from error

    def write(self, text: str) -> None:
        if self._file is None:
            raise CvopsError(f"{self.path}: write after close")
        try:
            self._file.write(text)
            self._pending += 1
            now = self._clock()
            if self._pending >= self._every_n or now - self._last_flush_s >= self._interval_s:
                self._file.flush()
                self._pending = 0
                self._last_flush_s = now
        except OSError as error:
            raise _io_error(self.path, "write", error) from error

    def close(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as error:
            raise _io_error(self.path, "flush", error) from error


class _CameraVideo:
    """One camera's MP4: container, video stream and the last pts written."""

    def __init__(
        self, path: Path, width: int, height: int, fps: float, codec: str, options: dict[str, object]
    ) -> None:
        self.path = path
        self.width = width
        self.height = height
        self._fps = fps
        self._first_pts_s: float | None = None
        self._last_pts = -1
        _make_folder(path.parent)  # FFmpeg opens the file only at the first packet: fail early here
        try:
            self._container = av.open(str(path), mode="w")
            stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            if not isinstance(stream, av.VideoStream):  # checked by AnnotatedVideoSink; narrows the type
                self._container.close()
                raise InvalidInputError(f"codec: expected a video encoder, got {codec!r}")
            stream.width = width
            stream.height = height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = _VIDEO_TIME_BASE
            if options:
                stream.options = dict(options)
            else:  # mpeg4's default 200 kb/s smears detail; aim at ~0.15 bit per pixel
                stream.bit_rate = max(int(width * height * fps * 0.15), 200_000)
            self._stream = stream
        except (OSError, av.error.FFmpegError) as error:
            raise _io_error(path, f"open a {codec} {width}x{height} video", error) from error

    def encode(self, image: ImageArray, frame: VideoFrame) -> None:
        """Encode one BGR image at the frame's time, fitted to the video's size first."""
        height, width = image.shape[:2]
        if (height, width) != (self.height, self.width):
            if height - self.height in (0, 1) and width - self.width in (0, 1):
                image = image[: self.height, : self.width]  # the odd last row/column yuv420p cannot hold
            else:  # the camera changed resolution (e.g. after a reconnect)
                image = np.asarray(
                    cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA), np.uint8
                )
        # OpenCV's BGR->I420 is faster than letting swscale convert bgr24 inside PyAV.
        yuv = np.asarray(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2YUV_I420), np.uint8)
        video_frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        video_frame.pts = self._next_pts(frame)
        video_frame.time_base = _VIDEO_TIME_BASE
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as error:
            raise _io_error(self.path, f"write frame {frame.index}", error) from error

    def close(self) -> None:
        """Drain the encoder and write the MP4 index."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except (OSError, av.error.FFmpegError) as error:
            self.abandon()
            raise _io_error(self.path, "finish", error) from error

    def abandon(self) -> None:
        """Release the file after a failure, without draining the encoder."""
        try:
            self._container.close()
        except (OSError, av.error.FFmpegError):
            logger.debug("%s: closing after a failure failed too", self.path, exc_info=True)

    def _next_pts(self, frame: VideoFrame) -> int:
        if frame.pts_s is None:
            pts_s = frame.index / self._fps
        else:
            if self._first_pts_s is None:
                self._first_pts_s = frame.pts_s
            pts_s = frame.pts_s - self._first_pts_s
        pts = max(round(pts_s / _VIDEO_TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        return pts


def _mot_line(frame_number: int, track_id: int, xyxy: list[float], score: float) -> str:
    """Return ``frame,id,x,y,w,h,score,-1,-1,-1`` with a newline."""
    x1, y1, x2, y2 = xyxy
    numbers = ",".join(map(_MOT_NUMBER.format, (x1, y1, x2 - x1, y2 - y1, score)))
    return f"{frame_number},{track_id},{numbers},-1,-1,-1\n"


def _is_video_encoder(codec: str) -> bool:
    try:
        return av.Codec(codec, "w").type == "video"
    except ValueError:  # av.codec.codec.UnknownCodecError: not in this FFmpeg build
        return False


def _with_track_labels(detections: Detections) -> Detections:
    """Return detections whose class names carry ``#<track id>`` (draw_detections labels by name)."""
    if detections.track_ids is None:
        return detections
    names = tuple(
        f"{name} #{track_id}" if track_id >= 1 else name
        for name, track_id in zip(detections.class_names, detections.track_ids.tolist(), strict=True)
    )
    return replace(detections, class_names=names)


def _image_problem(image: object, min_side: int) -> str | None:
    """Return why ``image`` is not a usable BGR frame, or None when it is."""
    if not isinstance(image, np.ndarray):
        return f"expected a numpy array, got {type(image).__name__}"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return f"expected a (H, W, 3) uint8 image, got {image.shape} {image.dtype}"
    if min(image.shape[:2]) < min_side:
        return f"expected at least {min_side}x{min_side} pixels, got {image.shape[1]}x{image.shape[0]}"
    return None


def _count_skip(skipped: Counter[str], camera_id: str, index: int, problem: str) -> None:
    """Count a skipped frame; warn at a camera's first skip, then only at DEBUG (no log floods)."""
    skipped[camera_id] += 1
    level = logging.WARNING if skipped[camera_id] == 1 else logging.DEBUG
    logger.log(level, "camera %s frame %d skipped: %s", camera_id, index, problem)


def _existing_samples(camera_dir: Path) -> OrderedDict[str, None]:
    """Return the samples (``.json`` sidecars) already in a camera folder, oldest first."""
    try:
        sidecars = [
            (path.stat().st_mtime_ns, path.stem)
            for path in camera_dir.glob("*.json")
            if _SAMPLE_STEM.fullmatch(path.stem)  # other files (a selection manifest) are not ours
        ]
    except OSError as error:
        raise _io_error(camera_dir, "list", error) from error
    return OrderedDict((stem, None) for _, stem in sorted(sidecars))


def _delete_sample(camera_dir: Path, stem: str) -> None:
    """Delete a sample's sidecar, then its images; files already gone are fine."""
    paths = [camera_dir / f"{stem}.json", camera_dir / f"{stem}.jpg", *camera_dir.glob(f"{stem}_*.jpg")]
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise _io_error(path, "delete", error) from error


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to ``<path>.tmp`` and rename, so a reader sees the old file or the whole new one."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as error:
        raise _io_error(path, "write", error) from error


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _io_error(folder, "create the folder", error) from error


def _check_flush_settings(every_n: int, interval_s: float) -> None:
    if every_n < 1:
        raise InvalidInputError(f"flush_every_n: expected >= 1, got {every_n}")
    if not interval_s > 0.0:
        raise InvalidInputError(f"flush_interval_s: expected > 0, got {interval_s}")


def _check_open(is_closed: bool, sink: object) -> None:
    if is_closed:
        raise CvopsError(f"{type(sink).__name__}: write after close")


def _close_all(closers: Iterable[Callable[[], None]]) -> None:
    """Call every closer even when some fail; then raise one error naming every failure."""
    failures = []
    for close in list(closers):
        try:
            close()
        except CvopsError as error:
            failures.append(str(error))
    if failures:
        raise CvopsError("; ".join(failures))


def _io_error(path: Path, action: str, error: Exception) -> CvopsError:
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return CvopsError(f"{path}: could not {action} ({reason})")
