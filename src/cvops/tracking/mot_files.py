"""MOTChallenge text files: ground truth, public detections and tracker results.

Every file is comma-separated, one box per line, 1-based frame numbers:

- ``gt/gt.txt``: ``frame,id,x,y,w,h,conf_flag,class,visibility`` (MOT16/17/20; MOT15 has
  ``frame,id,x,y,w,h,conf_flag,-1,-1,-1``).
- ``det/det.txt``: ``frame,-1,x,y,w,h,score[,-1,-1,-1]``.
- tracker results: ``frame,id,x,y,w,h,score,-1,-1,-1``.

Boxes are ``x, y, w, h`` in pixels, ``x, y`` the top-left corner (the devkit's 1-based pixel grid).
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

MIN_COLUMNS = 6
MAX_COLUMNS = 10
# 7 significant digits give back every value a float32 holds from a MOT file (at most 7 digits).
_NUMBER_FORMAT = "{:.7g}"


@dataclass(frozen=True, slots=True, eq=False)
class MotRows:
    """The rows of one MOTChallenge file, in file order.

    Attributes:
        frame: Frame number of each row, shape (N,), int64, 1-based as in the file.
        track_id: Track id of each row, shape (N,), int64 (-1 in detection files).
        xywh: Boxes, shape (N, 4), float32, ``x, y, w, h`` pixels (top-left corner, width, height).
        score: Column 7, shape (N,), float32: the confidence (detections, results) or the
            ``conf_flag`` (gt: 0 means ignore the box). 1 when the file has 6 columns.
        class_id: Column 8, shape (N,), int64: the MOT16/17/20 gt class (1 pedestrian); -1 when absent.
        visibility: Column 9, shape (N,), float32 in [0, 1] for MOT16/17/20 gt; -1 when absent.
    """

    frame: IntArray
    track_id: IntArray
    xywh: FloatArray
    score: FloatArray
    class_id: IntArray
    visibility: FloatArray

    def __post_init__(self) -> None:
        """Check that every array has one entry per row with the documented dtype."""
        n = int(self.frame.shape[0])
        if self.xywh.shape != (n, 4):
            raise InvalidInputError(f"xywh: expected shape ({n}, 4), got {self.xywh.shape}")
        for name, array, dtype in (
            ("frame", self.frame, np.int64),
            ("track_id", self.track_id, np.int64),
            ("xywh", self.xywh, np.float32),
            ("score", self.score, np.float32),
            ("class_id", self.class_id, np.int64),
            ("visibility", self.visibility, np.float32),
        ):
            if array.dtype != dtype or array.shape[0] != n:
                raise InvalidInputError(
                    f"{name}: expected {n} rows of {np.dtype(dtype)}, got {array.shape[0]} of {array.dtype}"
                )

    def __len__(self) -> int:
        """Return the number of rows."""
        return int(self.frame.shape[0])

    def up_to_frame(self, last_frame: int) -> MotRows:
        """Return the rows with ``frame <= last_frame``, in file order."""
        keep = self.frame <= last_frame
        return MotRows(
            self.frame[keep],
            self.track_id[keep],
            self.xywh[keep],
            self.score[keep],
            self.class_id[keep],
            self.visibility[keep],
        )

    @property
    def max_frame(self) -> int:
        """Return the largest frame number (0 when there are no rows)."""
        return int(self.frame.max()) if len(self) else 0


@dataclass(frozen=True, slots=True)
class SeqInfo:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``.

    Attributes:
        name: Sequence name, e.g. ``MOT17-04-FRCNN``.
        seq_length: Number of frames of the whole sequence.
        width: Image width in pixels.
        height: Image height in pixels.
        fps: Frame rate in frames per second.
        image_dir: Image folder relative to the sequence folder (``img1``).
        image_ext: Image file extension with its dot (``.jpg``).
    """

    name: str
    seq_length: int
    width: int
    height: int
    fps: float
    image_dir: str
    image_ext: str


@dataclass(frozen=True, slots=True)
class MotSequenceDir:
    """One sequence folder of a MOTChallenge split: ``<root>/<name>/``.

    Attributes:
        name: Sequence name (the folder name).
        path: The sequence folder.
    """

    name: str
    path: Path

    @property
    def gt_path(self) -> Path:
        """Return ``gt/gt.txt`` (absent in test splits)."""
        return self.path / "gt" / "gt.txt"

    @property
    def det_path(self) -> Path:
        """Return ``det/det.txt``, the public detections."""
        return self.path / "det" / "det.txt"

    @property
    def image_dir(self) -> Path:
        """Return ``img1/``, the frames ``000001.jpg``, ``000002.jpg``, ..."""
        return self.path / "img1"

    @property
    def seqinfo_path(self) -> Path:
        """Return ``seqinfo.ini``."""
        return self.path / "seqinfo.ini"


def read_mot_file(path: Path, *, max_frame: int | None = None) -> MotRows:
    """Read a MOTChallenge gt, det or results file (6 to 10 columns, LF or CRLF line endings).

    Args:
        path: The text file. An empty file gives zero rows.
        max_frame: Keep only rows with ``frame <= max_frame`` (e.g. the number of frames to
            evaluate); None keeps every row.

    Raises:
        InvalidInputError: When the file is missing, or a line (named by its 1-based number) does
            not hold 6 to 10 finite numbers, or its frame is not an integer >= 1.
    """
    values: list[list[float]] = []
    for line_number, fields in _numbered_rows(path):
        row = _parse_row(path, line_number, fields)
        if max_frame is None or row[0] <= max_frame:
            values.append(row)
    table = np.asarray(values, np.float64).reshape(-1, MAX_COLUMNS)
    return MotRows(
        frame=table[:, 0].astype(np.int64),
        track_id=table[:, 1].astype(np.int64),
        xywh=table[:, 2:6].astype(np.float32),
        score=table[:, 6].astype(np.float32),
        class_id=table[:, 7].astype(np.int64),
        visibility=table[:, 8].astype(np.float32),
    )


def write_mot_rows(path: Path, rows: MotRows) -> None:
    """Write rows as 10 columns ``frame,id,x,y,w,h,score,class,visibility,-1``.

    Numbers keep 7 significant digits, which reproduces every value read by :func:`read_mot_file`.
    Parent folders are created.
    """
    lines = [
        f"{frame},{track_id},{','.join(map(_NUMBER_FORMAT.format, box))},"
        f"{_NUMBER_FORMAT.format(score)},{class_id},{_NUMBER_FORMAT.format(visibility)},-1\n"
        for frame, track_id, box, score, class_id, visibility in zip(
            rows.frame.tolist(),
            rows.track_id.tolist(),
            rows.xywh.tolist(),
            rows.score.tolist(),
            rows.class_id.tolist(),
            rows.visibility.tolist(),
            strict=True,
        )
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def write_mot_results(
    path: Path,
    frames: npt.ArrayLike,
    track_ids: npt.ArrayLike,
    xywh: npt.ArrayLike,
    scores: npt.ArrayLike,
) -> None:
    """Write tracker results in the MOTChallenge format ``frame,id,x,y,w,h,score,-1,-1,-1``.

    Args:
        path: The results file, conventionally ``<SEQ>.txt``; parent folders are created.
        frames: Frame number of each box, shape (N,), 1-based.
        track_ids: Track id of each box, shape (N,), >= 1 by MOTChallenge convention.
        xywh: Boxes, shape (N, 4), pixels ``x, y, w, h`` (top-left corner, width, height).
        scores: Confidence of each box, shape (N,).

    Raises:
        InvalidInputError: When the arrays do not all have N rows or a frame is below 1.
    """
    frame_array = np.asarray(frames, np.int64).reshape(-1)
    n = frame_array.shape[0]
    boxes = np.asarray(xywh, np.float32).reshape(-1, 4)
    ids = np.asarray(track_ids, np.int64).reshape(-1)
    confidences = np.asarray(scores, np.float32).reshape(-1)
    if ids.shape[0] != n or boxes.shape[0] != n or confidences.shape[0] != n:
        raise InvalidInputError(
            f"expected {n} track ids, boxes and scores (one per frame entry), got "
            f"{ids.shape[0]}, {boxes.shape[0]} and {confidences.shape[0]}"
        )
    if n and frame_array.min() < 1:
        raise InvalidInputError(f"frames: expected 1-based frame numbers, got {frame_array.min()}")
    absent = np.full(n, -1, np.int64)
    write_mot_rows(
        path,
        MotRows(frame_array, ids, boxes, confidences, absent, absent.astype(np.float32)),
    )


def read_seqinfo(path: Path) -> SeqInfo:
    """Read a MOTChallenge ``seqinfo.ini``.

    Raises:
        InvalidInputError: When the file is missing, is not INI, or lacks a ``[Sequence]`` key.
    """
    parser = configparser.ConfigParser()
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
        section = parser["Sequence"]
        return SeqInfo(
            name=section["name"],
            seq_length=int(section["seqLength"]),
            width=int(section["imWidth"]),
            height=int(section["imHeight"]),
            fps=float(section["frameRate"]),
            image_dir=section.get("imDir", "img1"),
            image_ext=section.get("imExt", ".jpg"),
        )
    except FileNotFoundError as error:
        raise InvalidInputError(f"{path}: no such file") from error
    except configparser.Error as error:
        raise InvalidInputError(f"{path}: not a valid seqinfo.ini ({error.message})") from error
    except KeyError as error:
        raise InvalidInputError(f"{path}: expected key {error} in section [Sequence]") from error
    except ValueError as error:
        raise InvalidInputError(f"{path}: expected a number ({error})") from error


def list_mot_sequences(root: Path) -> list[MotSequenceDir]:
    """List the sequences of a MOTChallenge split folder (``<root>/<SEQ>/...``), sorted by name.

    A sub-folder counts as a sequence when it holds ``seqinfo.ini``, ``gt/gt.txt`` or ``det/det.txt``.

    Raises:
        InvalidInputError: When ``root`` is not a folder or holds no sequence.
    """
    if not root.is_dir():
        raise InvalidInputError(f"{root}: expected a MOTChallenge split folder, got no such folder")
    sequences = [
        MotSequenceDir(child.name, child)
        for child in sorted(root.iterdir())
        if child.is_dir()
        and any(
            p.is_file() for p in (child / "seqinfo.ini", child / "gt" / "gt.txt", child / "det" / "det.txt")
        )
    ]
    if not sequences:
        raise InvalidInputError(
            f"{root}: expected sequence folders <SEQ>/ with seqinfo.ini, gt/gt.txt or det/det.txt, found none"
        )
    return sequences


def _numbered_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, fields) of each non-blank line; newline=None folds CRLF."""
    try:
        with path.open(encoding="utf-8-sig", newline=None) as file:
            for line_number, line in enumerate(file, start=1):
                text = line.strip()
                if text:
                    yield line_number, [field.strip() for field in text.split(",")]
    except FileNotFoundError as error:
        raise InvalidInputError(f"{path}: no such file") from error
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{path}: expected a UTF-8 text file ({error.reason})") from error


def _parse_row(path: Path, line_number: int, fields: list[str]) -> list[float]:
    """Return the row padded to 10 numbers (score 1, class and visibility -1 when absent)."""
    if fields[-1] == "":  # a trailing comma, as some writers leave
        fields = fields[:-1]
    if not MIN_COLUMNS <= len(fields) <= MAX_COLUMNS:
        raise InvalidInputError(
            f"{path}:{line_number}: expected {MIN_COLUMNS} to {MAX_COLUMNS} comma-separated columns, "
            f"got {len(fields)}"
        )
    try:
        row = [float(field) for field in fields]
    except ValueError as error:
        raise InvalidInputError(f"{path}:{line_number}: expected numbers, got {error}") from error
    if not all(math.isfinite(value) for value in row):
        raise InvalidInputError(f"{path}:{line_number}: expected finite numbers, got NaN or inf")
    if row[0] < 1 or not row[0].is_integer():
        raise InvalidInputError(f"{path}:{line_number}: expected an integer frame >= 1, got {fields[0]}")
    if not row[1].is_integer():
        raise InvalidInputError(f"{path}:{line_number}: expected an integer track id, got {fields[1]}")
    defaults = [1.0, -1.0, -1.0, -1.0]  # score, class, visibility, unused (world z in MOT15)
    return row + defaults[len(row) - MIN_COLUMNS :]
