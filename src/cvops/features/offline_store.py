"""The offline store cvops writes: parquet files that the Feast sources of ``feature_repo/`` read.

Layout under an offline folder (``<feature repo>/data/offline`` for a staged repository)::

    frame_features/<UTC time>-<random>.parquet           one file per write, FrameFeatures rows
    camera_window_features/<UTC time>-<random>.parquet   one file per write, CameraWindowFeatures

Files are only ever added (never rewritten), each under a hidden temporary name first and then
renamed, so several writers (the video pipeline, the selection step) may share a folder and a
reader (Feast) never sees half a file. Undefined numbers (NaN: ``score_mean`` of a frame without
detections, an unknown ``pts_s``) are written as nulls, which Feast serves as missing values.
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvops.errors import CvopsError, InvalidInputError
from cvops.features.camera_window import CameraWindowFeatures
from cvops.features.frame_features import FrameFeatures

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]  # no stubs installed

FRAME_TABLE = "frame_features"
CAMERA_WINDOW_TABLE = "camera_window_features"
CREATED_COLUMN = "created_timestamp"

_INT_COLUMNS = {"frame_index", "detection_count", "image_width_px", "image_height_px", "frame_count_1m"}
_FLOAT64_COLUMNS = {"pts_s"}


def write_frame_features(rows: Sequence[FrameFeatures], offline_dir: Path) -> Path | None:
    """Append frame features to the offline store as one new parquet file.

    Called by the video pipeline's :class:`~cvops.video.feature_sink.FeatureSink` and by the
    active-learning selection step.

    Args:
        rows: Features of any cameras and frames; an empty sequence writes nothing.
        offline_dir: The offline folder (``<feature repo>/data/offline``); created if missing.

    Returns:
        The file written, or None when ``rows`` is empty.

    Raises:
        InvalidInputError: When a row is not a :class:`FrameFeatures`.
        CvopsError: When the file cannot be written (the message names it).
    """
    return _write_rows(rows, FrameFeatures, offline_dir / FRAME_TABLE)


def write_camera_window_features(rows: Sequence[CameraWindowFeatures], offline_dir: Path) -> Path | None:
    """Append per-camera window aggregates to the offline store as one new parquet file.

    Args:
        rows: Window rows of any cameras; an empty sequence writes nothing.
        offline_dir: The offline folder (``<feature repo>/data/offline``); created if missing.

    Returns:
        The file written, or None when ``rows`` is empty.

    Raises:
        InvalidInputError: When a row is not a :class:`CameraWindowFeatures`.
        CvopsError: When the file cannot be written (the message names it).
    """
    return _write_rows(rows, CameraWindowFeatures, offline_dir / CAMERA_WINDOW_TABLE)


def _write_rows(rows: Sequence[object], kind: type, folder: Path) -> Path | None:
    if not rows:
        return None
    for row in rows:
        if not isinstance(row, kind):
            raise InvalidInputError(f"rows: expected {kind.__name__} items, got {type(row).__name__}")
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no stubs installed

    table = _table(rows, kind)
    created = datetime.now(UTC)
    name = f"{created:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
    path = folder / name
    temporary = folder / f".{name}.tmp"  # hidden: parquet readers skip names starting with "."
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):  # the folder itself may be what failed
            temporary.unlink(missing_ok=True)
        raise CvopsError(f"{path}: could not write ({error.strerror or error})") from error
    return path


def _table(rows: Sequence[object], kind: type) -> pa.Table:
    import pyarrow as pa

    names = [f.name for f in fields(kind)]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name in names:
            value = getattr(row, name)
            columns[name].append(None if isinstance(value, float) and math.isnan(value) else value)
    created = datetime.now(UTC)
    columns[CREATED_COLUMN] = [created] * len(rows)
    schema = pa.schema([pa.field(name, _arrow_type(name)) for name in [*names, CREATED_COLUMN]])
    return pa.Table.from_pydict(columns, schema=schema)


def _arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    if name == "camera_id":
        return pa.string()
    if name in ("event_timestamp", CREATED_COLUMN):
        return pa.timestamp("us", tz="UTC")
    if name in _INT_COLUMNS:
        return pa.int64()
    if name in _FLOAT64_COLUMNS:
        return pa.float64()
    return pa.float32()
