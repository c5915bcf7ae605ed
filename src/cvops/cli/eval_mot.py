"""``cvops eval-mot``: score MOTChallenge tracker results with TrackEval (HOTA, MOTA, IDF1, ...)."""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from cvops.cli.app import app
from cvops.errors import InvalidInputError
from cvops.metrics.tracking import MotEvaluation, MotMetrics, MotSequence, evaluate_mot
from cvops.tracking.mot_files import list_mot_sequences, read_mot_file, read_seqinfo


class Benchmark(StrEnum):
    """Ground-truth preprocessing (see :mod:`cvops.metrics.tracking`)."""

    MOT15 = "MOT15"
    MOT16 = "MOT16"
    MOT17 = "MOT17"
    MOT20 = "MOT20"


@app.command("eval-mot")
def eval_mot(
    gt: Path = typer.Option(
        ...,
        "--gt",
        help="A gt.txt file, or a MOTChallenge split folder (<SEQ>/gt/gt.txt, <SEQ>/seqinfo.ini).",
    ),
    pred: Path = typer.Option(
        ...,
        "--pred",
        help="Tracker results: a <SEQ>.txt file with a gt file, a folder of <SEQ>.txt with a split.",
    ),
    benchmark: Benchmark = typer.Option(
        Benchmark.MOT17,
        "--benchmark",
        "-b",
        help="MOT15: no classes; MOT17: pedestrians only, distractors removed.",
    ),
    seq_length: int | None = typer.Option(
        None,
        "--seq-length",
        min=1,
        help="Frames to score; default: seqinfo.ini's seqLength, else the last gt frame.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
) -> None:
    """Score MOTChallenge tracker results against ground truth (HOTA, MOTA, IDF1, ...) with TrackEval.

    The table shows ratios in %, the JSON in 0..1. COMBINED sums counts over all sequences,
    as the MOTChallenge server does.
    """
    if gt.is_dir():
        sequences = _split_sequences(gt, pred, seq_length)
    elif gt.is_file():
        if not pred.is_file():
            raise InvalidInputError(f"--pred: expected a results file to score against {gt}, got {pred}")
        name = gt.parent.parent.name if gt.parent.name == "gt" else gt.parent.name
        sequences = [MotSequence(name or "seq", gt, pred, _seq_length(gt, seq_length))]
    else:
        raise InvalidInputError(f"--gt: {gt}: no such file or folder")
    evaluation = evaluate_mot(sequences, benchmark=benchmark.value)
    Console().print(_table(evaluation))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(_as_json(evaluation), indent=1) + "\n")


def _split_sequences(gt_root: Path, pred_root: Path, seq_length: int | None) -> list[MotSequence]:
    """Pair every ``<SEQ>/gt/gt.txt`` of a split with ``<pred_root>/<SEQ>.txt``."""
    if not pred_root.is_dir():
        raise InvalidInputError(f"--pred: expected a folder of <SEQ>.txt to go with the split {gt_root}")
    sequences = []
    for seq in list_mot_sequences(gt_root):
        if not seq.gt_path.is_file():
            continue
        pred_path = pred_root / f"{seq.name}.txt"
        if not pred_path.is_file():
            raise InvalidInputError(f"--pred: expected {pred_path} for sequence {seq.name}, got no such file")
        sequences.append(MotSequence(seq.name, seq.gt_path, pred_path, _seq_length(seq.gt_path, seq_length)))
    if not sequences:
        raise InvalidInputError(f"--gt: {gt_root}: expected <SEQ>/gt/gt.txt files, found none")
    return sequences


def _seq_length(gt_path: Path, given: int | None) -> int:
    """Return the given length, else seqinfo.ini's (``<seq>/seqinfo.ini``), else the last gt frame."""
    if given is not None:
        return given
    for folder in (gt_path.parent, gt_path.parent.parent):
        if (folder / "seqinfo.ini").is_file():
            return read_seqinfo(folder / "seqinfo.ini").seq_length
    return max(read_mot_file(gt_path).max_frame, 1)


_COLUMNS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN", "MT", "PT", "ML", "Frag")


def _row(name: str, m: MotMetrics) -> list[str]:
    ratios = (m.hota, m.det_a, m.ass_a, m.mota, m.motp, m.idf1)
    counts = (m.idsw, m.fp, m.fn, m.mt, m.pt, m.ml, m.frag)
    return [name, *(f"{100 * r:.1f}" for r in ratios), *(str(c) for c in counts)]


def _table(evaluation: MotEvaluation) -> Table:
    names = [*evaluation.sequences, "COMBINED"]
    table = Table(
        Column("sequence", min_width=max(map(len, names)), no_wrap=True),
        *(Column(name, justify="right") for name in _COLUMNS),
        title=f"TrackEval {evaluation.benchmark} (ratios in %)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=0,
        show_edge=False,
    )
    for name, metrics in evaluation.sequences.items():
        table.add_row(*_row(name, metrics))
    table.add_section()
    table.add_row(*_row("COMBINED", evaluation.combined), style="bold")
    return table


def _as_json(evaluation: MotEvaluation) -> dict[str, object]:
    return {
        "benchmark": evaluation.benchmark,
        "sequences": {name: asdict(m) for name, m in evaluation.sequences.items()},
        "combined": asdict(evaluation.combined),
    }
