"""MOTChallenge tracking metrics (HOTA, CLEAR MOT, Identity) through TrackEval, the reference code.

The files are checked and rewritten into a temporary folder in TrackEval's layout, then scored by
``trackeval.Evaluator`` with ``trackeval.datasets.MotChallenge2DBox``: the official pipeline, so
the numbers are the ones the MOTChallenge server publishes. Boxes match at IoU >= 0.5 (CLEAR and
Identity); HOTA averages over the 19 IoU thresholds 0.05..0.95.

Benchmarks choose the ground-truth preprocessing (TrackEval's ``BENCHMARK``):

- ``MOT15``: no class handling. Every gt row with ``conf_flag != 0`` is a target; predictions
  are never removed. Use it for MOT15-style files whose columns 8-10 are ``-1``.
- ``MOT16``/``MOT17``: only pedestrians (class 1) with ``conf_flag != 0`` are targets; a prediction
  matched (IoU >= 0.5, Hungarian) to a distractor (person_on_vehicle, static_person, distractor,
  reflection) is removed before scoring; other gt classes are dropped. The gt needs the class column.
- ``MOT20``: as MOT17, with non_mot_vehicle also a distractor.

Predictions must carry class -1 or 1 in column 8 (TrackEval refuses other classes).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from cvops.errors import BackendUnavailableError, InvalidInputError
from cvops.tracking.mot_files import MotRows, read_mot_file, write_mot_rows

logger = logging.getLogger(__name__)

MotBenchmark = Literal["MOT15", "MOT16", "MOT17", "MOT20"]
INSTALL_HINT = "install cvops[tracking]"
_TRACKER_NAME = "cvops"
_SPLIT = "eval"


@dataclass(frozen=True, slots=True)
class MotSequence:
    """One sequence to score.

    Attributes:
        name: Sequence name (a plain folder name, unique among the sequences scored together).
        gt_path: Ground-truth file (``gt/gt.txt``).
        pred_path: Tracker results file (``frame,id,x,y,w,h,score,-1,-1,-1``).
        seq_length: Number of frames to score, frames 1..seq_length; rows after it are ignored.
    """

    name: str
    gt_path: Path
    pred_path: Path
    seq_length: int

    def __post_init__(self) -> None:
        """Check the name is a plain folder name and the length is positive."""
        if not self.name or self.name in {".", ".."} or any(c in self.name for c in "/\\"):
            raise InvalidInputError(f"sequence name: expected a plain folder name, got {self.name!r}")
        if self.seq_length < 1:
            raise InvalidInputError(f"{self.name}: expected seq_length >= 1, got {self.seq_length}")


@dataclass(frozen=True, slots=True)
class MotMetrics:
    """Tracking metrics of one sequence or of all combined. Ratios in 0..1, counts as ints.

    Attributes:
        hota: HOTA averaged over the IoU thresholds 0.05..0.95.
        det_a: Detection accuracy (HOTA's DetA, threshold-averaged).
        ass_a: Association accuracy (HOTA's AssA, threshold-averaged).
        loc_a: Localisation accuracy (HOTA's LocA, threshold-averaged).
        mota: Multi-object tracking accuracy (CLEAR); may be negative.
        motp: Mean IoU of matched boxes (CLEAR, IoU >= 0.5).
        idf1: Identity F1.
        idp: Identity precision.
        idr: Identity recall.
        recall: Detection recall (CLEAR TP / gt boxes).
        precision: Detection precision (CLEAR TP / predicted boxes).
        idsw: Identity switches.
        mt: Mostly tracked gt tracks (>= 80% of their frames matched).
        pt: Partially tracked gt tracks.
        ml: Mostly lost gt tracks (< 20% matched).
        frag: Fragmentations.
        tp: Matched boxes.
        fp: False positive boxes.
        fn: Missed gt boxes.
        num_gt_ids: Number of gt tracks scored.
    """

    hota: float
    det_a: float
    ass_a: float
    loc_a: float
    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    recall: float
    precision: float
    idsw: int
    mt: int
    pt: int
    ml: int
    frag: int
    tp: int
    fp: int
    fn: int
    num_gt_ids: int


@dataclass(frozen=True, slots=True)
class MotEvaluation:
    """Metrics of each sequence and of all sequences combined (TrackEval's ``COMBINED_SEQ``).

    Attributes:
        benchmark: The preprocessing used (``MOT15``, ``MOT17``, ...).
        sequences: Metrics of each sequence, keyed by name, in the order given.
        combined: Metrics over all sequences (summed counts, not averaged ratios).
    """

    benchmark: str
    sequences: dict[str, MotMetrics]
    combined: MotMetrics


def evaluate_mot(sequences: Sequence[MotSequence], *, benchmark: MotBenchmark = "MOT17") -> MotEvaluation:
    """Score tracker results against MOTChallenge ground truth with TrackEval.

    Args:
        sequences: The sequences to score together; names must be unique.
        benchmark: Ground-truth preprocessing, see the module docstring: ``MOT15`` for files
            without classes, ``MOT16``/``MOT17``/``MOT20`` for files with them.

    Raises:
        InvalidInputError: When there is no sequence, names repeat, a file is missing or
            malformed, or TrackEval refuses the data (e.g. an id twice in a frame).
        BackendUnavailableError: When TrackEval is not installed.
    """
    if benchmark not in get_args(MotBenchmark):
        raise InvalidInputError(f"benchmark: expected one of {get_args(MotBenchmark)}, got {benchmark!r}")
    if not sequences:
        raise InvalidInputError("sequences: expected at least one sequence, got none")
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"sequences: expected unique names, got {names}")
    try:
        import trackeval
    except ImportError as error:
        raise BackendUnavailableError(f"TrackEval is not installed: {INSTALL_HINT}") from error

    with tempfile.TemporaryDirectory(prefix="cvops-mot-") as tmp:
        root = Path(tmp)
        _write_trackeval_layout(root, sequences, benchmark)
        dataset_config = {
            "GT_FOLDER": str(root / "gt"),
            "TRACKERS_FOLDER": str(root / "trackers"),
            "OUTPUT_FOLDER": str(root / "output"),
            "TRACKERS_TO_EVAL": [_TRACKER_NAME],
            "BENCHMARK": benchmark,
            "SPLIT_TO_EVAL": _SPLIT,
            "SEQ_INFO": {s.name: s.seq_length for s in sequences},
            "DO_PREPROC": True,
            "PRINT_CONFIG": False,
        }
        eval_config = {
            "USE_PARALLEL": False,
            "BREAK_ON_ERROR": True,
            "LOG_ON_ERROR": None,  # else TrackEval appends to error_log.txt inside its installed package
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,  # else it switches on a module-global timing printer
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
        }
        metric_config = {"THRESHOLD": 0.5, "PRINT_CONFIG": False}
        # TrackEval prints progress and tracebacks unconditionally; keep them for DEBUG logs.
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
                metrics = [
                    trackeval.metrics.HOTA(),
                    trackeval.metrics.CLEAR(dict(metric_config)),
                    trackeval.metrics.Identity(dict(metric_config)),
                ]
                results, _ = trackeval.Evaluator(eval_config).evaluate([dataset], metrics)
        except trackeval.utils.TrackEvalException as error:
            raise InvalidInputError(f"TrackEval refused the data: {error}") from error
        finally:
            logger.debug("TrackEval output:\n%s", captured.getvalue())
    by_sequence = results["MotChallenge2DBox"][_TRACKER_NAME]
    return MotEvaluation(
        benchmark=benchmark,
        sequences={name: _metrics(by_sequence[name]["pedestrian"]) for name in names},
        combined=_metrics(by_sequence["COMBINED_SEQ"]["pedestrian"]),
    )


def _write_trackeval_layout(root: Path, sequences: Sequence[MotSequence], benchmark: str) -> None:
    """Write ``gt/<BENCH>-<SPLIT>/<SEQ>/gt/gt.txt`` and ``trackers/<BENCH>-<SPLIT>/cvops/data/<SEQ>.txt``.

    The files are parsed (errors name the line) and rewritten as 10 columns, so TrackEval
    gets the columns it indexes (conf_flag and class for gt, score for predictions) and
    integer frame keys, whatever variant of the format came in.
    """
    split = f"{benchmark}-{_SPLIT}"  # TrackEval looks under BENCHMARK-SPLIT_TO_EVAL in both folders
    for seq in sequences:
        gt_rows = _rows_to_score(seq.gt_path, seq.seq_length)
        pred_rows = _rows_to_score(seq.pred_path, seq.seq_length)
        write_mot_rows(root / "gt" / split / seq.name / "gt" / "gt.txt", gt_rows)
        write_mot_rows(root / "trackers" / split / _TRACKER_NAME / "data" / f"{seq.name}.txt", pred_rows)


def _rows_to_score(path: Path, seq_length: int) -> MotRows:
    """Read a file and keep frames 1..seq_length (TrackEval refuses later frames)."""
    rows = read_mot_file(path)
    kept = rows.up_to_frame(seq_length)
    if len(kept) < len(rows):
        logger.warning("%s: ignored %d rows after frame %d", path, len(rows) - len(kept), seq_length)
    return kept


def _metrics(result: dict[str, dict[str, Any]]) -> MotMetrics:
    """Pick our fields from TrackEval's nested result (HOTA arrays averaged over thresholds)."""
    hota, clear, identity = result["HOTA"], result["CLEAR"], result["Identity"]
    return MotMetrics(
        hota=float(np.mean(hota["HOTA"])),
        det_a=float(np.mean(hota["DetA"])),
        ass_a=float(np.mean(hota["AssA"])),
        loc_a=float(np.mean(hota["LocA"])),
        mota=float(clear["MOTA"]),
        motp=float(clear["MOTP"]),
        idf1=float(identity["IDF1"]),
        idp=float(identity["IDP"]),
        idr=float(identity["IDR"]),
        recall=float(clear["CLR_Re"]),
        precision=float(clear["CLR_Pr"]),
        idsw=int(clear["IDSW"]),
        mt=int(clear["MT"]),
        pt=int(clear["PT"]),
        ml=int(clear["ML"]),
        frag=int(clear["Frag"]),
        tp=int(clear["CLR_TP"]),
        fp=int(clear["CLR_FP"]),
        fn=int(clear["CLR_FN"]),
        num_gt_ids=int(result["Count"]["GT_IDs"]),
    )
