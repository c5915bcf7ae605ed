"""``cvops select``: choose the frames of an unlabeled pool most worth labeling next."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cvops.active_learning.records import STRATEGIES
from cvops.active_learning.selection import SelectionSettings, check_request, select_frames
from cvops.cli.app import app

# The defaults live in SelectionSettings; an instance makes them readable here.
_DEFAULTS = SelectionSettings()


@app.command()
def select(
    pool: Path = typer.Option(..., "--pool", "-p", help="Folder of unlabeled frames."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Model package of the current detector (random and coreset run without)."
    ),
    budget: int = typer.Option(..., "--budget", "-n", help="Frames to pick for labeling (>= 1)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for selection.jsonl and summary.json."),
    strategy: str = typer.Option("combined", "--strategy", "-s", help=f"One of: {', '.join(STRATEGIES)}."),
    challenger: Path | None = typer.Option(
        None, "--challenger", help="Challenger model package (needed by 'disagreement')."
    ),
    labeled: Path | None = typer.Option(
        None, "--labeled", help="Folder of frames already labeled (diversity and duplicates)."
    ),
    seed: int = typer.Option(0, help="Seed of the random choices (>= 0)."),
    duplicate_bits: int = typer.Option(
        _DEFAULTS.duplicate_bits, help="Near-duplicate when dHash and pHash differ in at most this many bits."
    ),
    keep_duplicates: bool = typer.Option(False, "--keep-duplicates", help="Do not drop near-duplicates."),
    threads: int = typer.Option(0, help="Runtime CPU threads (0: runtime default)."),
) -> None:
    """Rank unlabeled frames by uncertainty and diversity and write the top BUDGET with reasons.

    OUT/selection.jsonl: one frame a line (path, rank, scores, reason, pre-annotations).
    """
    check_request(budget, strategy, challenger is not None, seed, has_model=model is not None)
    settings = SelectionSettings(
        duplicate_bits=duplicate_bits, should_deduplicate=not keep_duplicates, num_threads=threads
    )
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]score"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=not console.is_terminal,
    ) as progress:  # fmt: skip
        task = progress.add_task("score", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = select_frames(
            pool, model, budget, strategy, out, challenger_dir=challenger, labeled_dir=labeled,
            seed=seed, settings=settings, on_progress=advance,
        )  # fmt: skip
    table = Table("rank", "frame", "boxes", "reason")
    for frame in result.frames[:20]:
        table.add_row(
            str(frame.rank), Path(frame.path).name, str(len(frame.predictions.detections)), frame.reason
        )
    console.print(table)
    summary = result.summary
    console.print(
        f"selected {summary.selected} of {summary.pool_size} frames with {summary.strategy} "
        f"({summary.duplicates_removed} near-duplicates dropped); wrote {result.selection_path}",
        highlight=False,
    )
