"""Frames of a drifted window become active-learning candidates.

Three views of the same list are written, most novel frame first:

- ``candidates.txt``: one absolute frame path per line (``cvops drift --current`` and other
  tools read such lists);
- ``candidates.jsonl``: ``{"path", "novelty", "rank"}`` per line, novelty being the frame's
  embedding distance to its nearest reference frame (higher: less like anything seen before);
- ``candidates/``: a folder of symlinks ``<rank>_<file name>`` to the frames, which
  ``cvops select --pool candidates/`` takes as its pool of unlabeled frames.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cvops.errors import InvalidInputError
from cvops.monitoring.results import CANDIDATES_DIR, CANDIDATES_JSONL, CANDIDATES_TXT


def novelty_scores(
    reference: npt.NDArray[np.float32], current: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Return each current row's Euclidean distance to its nearest reference row, shape (N,).

    Args:
        reference: Reference embeddings, shape (M, D), M >= 1.
        current: Current embeddings, shape (N, D).
    """
    if (
        reference.ndim != 2
        or current.ndim != 2
        or reference.shape[1] != current.shape[1]
        or len(reference) == 0
    ):
        raise InvalidInputError(
            f"novelty_scores: expected (M>=1, D) and (N, D), got {reference.shape} and {current.shape}"
        )
    x = reference.astype(np.float64)
    y = current.astype(np.float64)
    distances2 = (y**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2.0 * y @ x.T
    nearest: npt.NDArray[np.float64] = np.sqrt(np.maximum(distances2.min(axis=1), 0.0))
    return nearest


def write_candidates(
    paths: list[Path], novelty: npt.NDArray[np.float64] | None, out_dir: Path, max_candidates: int
) -> Path:
    """Write the candidate list, JSONL and symlink folder; return the path of ``candidates.txt``.

    Args:
        paths: The current window's frames.
        novelty: Each frame's novelty, shape (N,); None keeps the window order.
        out_dir: Folder that receives the three outputs (an older ``candidates/`` is replaced).
        max_candidates: Keep at most this many frames, the most novel first.
    """
    if novelty is not None and len(novelty) != len(paths):
        raise InvalidInputError(f"novelty: expected {len(paths)} values, got {len(novelty)}")
    order = (np.argsort(-novelty, kind="stable") if novelty is not None else np.arange(len(paths)))[
        :max_candidates
    ]
    chosen = [
        (rank, paths[int(i)].resolve(), None if novelty is None else float(novelty[int(i)]))
        for rank, i in enumerate(order)
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_candidates(out_dir)
    list_file = out_dir / CANDIDATES_TXT
    list_file.write_text("".join(f"{path}\n" for _, path, _ in chosen), encoding="utf-8")
    with (out_dir / CANDIDATES_JSONL).open("w", encoding="utf-8") as stream:
        for rank, path, score in chosen:
            stream.write(json.dumps({"path": str(path), "novelty": score, "rank": rank}) + "\n")
    links = out_dir / CANDIDATES_DIR
    links.mkdir(exist_ok=True)
    for rank, path, _ in chosen:
        os.symlink(path, links / f"{rank:06d}_{path.name}")
    return list_file


def remove_candidates(out_dir: Path) -> None:
    """Remove the candidate files of an earlier check in ``out_dir`` (only the symlinks it made)."""
    for name in (CANDIDATES_TXT, CANDIDATES_JSONL):
        (out_dir / name).unlink(missing_ok=True)
    links = out_dir / CANDIDATES_DIR
    if links.is_dir():
        for old in links.iterdir():
            if old.is_symlink():
                old.unlink()
        with contextlib.suppress(OSError):  # left in place when it holds anything but our links
            links.rmdir()
