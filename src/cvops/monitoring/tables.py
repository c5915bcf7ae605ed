"""Feature tables of a window of frames: one row per frame, and one row per detected box.

The frame table holds the image statistics (the column names of
:class:`cvops.features.frame_features.FrameFeatures`, so their Parquet files can be compared
too), the detection count when a detector ran, the image embedding of
:mod:`cvops.monitoring.embedding` as ``embedding_000``... columns, and the frame's file as
``frame_path``. The box table holds each box's score, size and aspect ratio relative to its
image, and its class name.

On disk a feature folder holds ``frames.parquet`` and, when a detector ran, ``boxes.parquet``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed

from cvops.detection.detector import Detector
from cvops.errors import InvalidInputError
from cvops.features.image_stats import image_stats
from cvops.images import read_image
from cvops.monitoring.embedding import EMBEDDING_SIZE, image_embedding

FRAME_PATH = "frame_path"
IMAGE_COLUMNS: tuple[str, ...] = ("brightness_gray", "contrast_gray", "blur_laplacian_var")
DETECTION_COUNT = "detection_count"
BOX_NUMERIC_COLUMNS: tuple[str, ...] = ("score", "box_width_norm", "box_height_norm", "box_aspect_ratio_wh")
BOX_CLASS = "class_name"
EMBEDDING_COLUMNS: tuple[str, ...] = tuple(f"embedding_{i:03d}" for i in range(EMBEDDING_SIZE))
FRAMES_FILE = "frames.parquet"
BOXES_FILE = "boxes.parquet"


@dataclass(frozen=True, slots=True, eq=False)
class FeatureTables:
    """The features of one window of frames.

    Attributes:
        frames: One row per frame (see the module docstring for the columns).
        boxes: One row per detected box; None when no detector ran (an empty table means a
            detector ran and found nothing).
    """

    frames: pd.DataFrame
    boxes: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        """Reject a table without frames or without any known feature column."""
        if len(self.frames) == 0:
            raise InvalidInputError("frames: expected at least one frame, got an empty table")
        known = (*IMAGE_COLUMNS, DETECTION_COUNT, EMBEDDING_COLUMNS[0])
        if not any(column in self.frames.columns for column in known):
            raise InvalidInputError(
                f"frames: expected some of the columns {list(known)}, got {list(self.frames.columns)}"
            )

    @property
    def has_embeddings(self) -> bool:
        """Return whether every embedding column is present."""
        return all(column in self.frames.columns for column in EMBEDDING_COLUMNS)


def build_feature_tables(
    paths: Sequence[Path],
    detector: Detector | None = None,
    *,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
) -> FeatureTables:
    """Read frames and compute their feature tables.

    Args:
        paths: Image files, in window order.
        detector: When given, each frame's detections fill the box table and ``detection_count``.
        batch_size: Frames per detector call.
        on_progress: Called as ``(frames_done, frames_total)`` after each batch.

    Raises:
        InvalidInputError: For no paths or a batch size < 1.
        ImageReadError: For a missing or unreadable frame.
    """
    if not paths:
        raise InvalidInputError("paths: expected at least one frame, got none")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size: expected >= 1, got {batch_size}")
    frame_rows: list[dict[str, object]] = []
    box_rows: list[dict[str, object]] = []
    for start in range(0, len(paths), batch_size):
        batch = list(paths[start : start + batch_size])
        images = [read_image(path) for path in batch]
        detections = detector.detect(images) if detector is not None else [None] * len(images)
        for path, image, found in zip(batch, images, detections, strict=True):
            stats = image_stats(image)
            row: dict[str, object] = {
                FRAME_PATH: str(path),
                "brightness_gray": stats.brightness,
                "contrast_gray": stats.contrast,
                "blur_laplacian_var": stats.blur_laplacian_var,
            }
            if found is not None:
                row[DETECTION_COUNT] = len(found)
                height, width = image.shape[:2]
                box_width = (found.xyxy[:, 2] - found.xyxy[:, 0]).astype(np.float64)
                box_height = (found.xyxy[:, 3] - found.xyxy[:, 1]).astype(np.float64)
                for i in range(len(found)):
                    box_rows.append(
                        {
                            FRAME_PATH: str(path),
                            "score": float(found.scores[i]),
                            "box_width_norm": box_width[i] / width,
                            "box_height_norm": box_height[i] / height,
                            # A degenerate box (zero height) gets its width in pixels as ratio.
                            "box_aspect_ratio_wh": box_width[i] / max(box_height[i], 1.0),
                            BOX_CLASS: found.class_names[i],
                        }
                    )
            row.update(zip(EMBEDDING_COLUMNS, image_embedding(image).tolist(), strict=True))
            frame_rows.append(row)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(paths)), len(paths))
    boxes = None
    if detector is not None:
        boxes = pd.DataFrame(box_rows, columns=[FRAME_PATH, *BOX_NUMERIC_COLUMNS, BOX_CLASS])
    return FeatureTables(pd.DataFrame(frame_rows), boxes)


def write_feature_tables(tables: FeatureTables, folder: Path) -> None:
    """Write ``frames.parquet`` (and ``boxes.parquet`` when there is a box table) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tables.frames.to_parquet(folder / FRAMES_FILE, index=False)
    if tables.boxes is not None:
        tables.boxes.to_parquet(folder / BOXES_FILE, index=False)


def read_feature_tables(path: Path) -> FeatureTables:
    """Read a feature folder (``frames.parquet`` [+ ``boxes.parquet``]) or one frame-table Parquet file.

    Raises:
        InvalidInputError: When the files are missing, unreadable, or hold no known column.
    """
    frames_file = path / FRAMES_FILE if path.is_dir() else path
    boxes_file = path / BOXES_FILE if path.is_dir() else None
    if not frames_file.is_file():
        raise InvalidInputError(f"{path}: expected a .parquet file or a folder with {FRAMES_FILE}, got none")
    frames = _read_parquet(frames_file)
    boxes = _read_parquet(boxes_file) if boxes_file is not None and boxes_file.is_file() else None
    if boxes is not None:
        missing = [c for c in (*BOX_NUMERIC_COLUMNS, BOX_CLASS) if c not in boxes.columns]
        if missing:
            raise InvalidInputError(
                f"{boxes_file}: expected box columns {missing}, got {list(boxes.columns)}"
            )
    try:
        return FeatureTables(frames, boxes)
    except InvalidInputError as error:
        raise InvalidInputError(f"{frames_file}: {error}") from error


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow  # type: ignore[import-untyped]

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as error:
        raise InvalidInputError(
            f"{path}: expected a Parquet table, got an unreadable file ({error})"
        ) from error
