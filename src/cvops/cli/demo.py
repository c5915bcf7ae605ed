"""``cvops demo``: run one iteration of the continuous-training loop locally and write its report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cvops.cli.app import app, state_dir
from cvops.loop.demo import DemoSettings

_DEFAULTS = DemoSettings()


@app.command()
def demo(
    out: Path = typer.Option(_DEFAULTS.out_dir, "--out", "-o", help="Folder for the run report."),
    budget: int = typer.Option(_DEFAULTS.budget, min=1, help="Frames sent to Label Studio this iteration."),
    epochs: int = typer.Option(_DEFAULTS.epochs, min=1, help="Fine-tuning epochs."),
    nproc: int = typer.Option(_DEFAULTS.nproc, min=1, help="DDP ranks."),
    replay_frames: int = typer.Option(
        _DEFAULTS.replay_frames, min=10, help="Frames replayed through the canary."
    ),
    canary_percent: int = typer.Option(
        _DEFAULTS.canary_percent, min=1, max=99, help="Share of replayed traffic the challenger answers."
    ),
    pool_count: int = typer.Option(_DEFAULTS.pool_count, min=4, help="Unlabeled pool images."),
    labeled_count: int = typer.Option(_DEFAULTS.labeled_count, min=4, help="Seed training images."),
    heldout_count: int = typer.Option(_DEFAULTS.heldout_count, min=4, help="Held-out images."),
    labelstudio_venv: Path = typer.Option(
        _DEFAULTS.labelstudio_venv, help="Venv with the Label Studio server (make labelstudio)."
    ),
) -> None:
    """Run the continuous-training loop once, locally; run it again for the next iteration.

    Steps: data, active learning, Label Studio, DDP, export gate, MLflow, canary, A/B gate.
    """
    from cvops.loop.demo import run_demo

    console = Console(stderr=True)
    settings = DemoSettings(
        out_dir=out,
        budget=budget,
        epochs=epochs,
        nproc=nproc,
        replay_frames=replay_frames,
        canary_percent=canary_percent,
        pool_count=pool_count,
        labeled_count=labeled_count,
        heldout_count=heldout_count,
        labelstudio_venv=labelstudio_venv,
    )
    with console.status("preparing the demo") as status:
        result = run_demo(settings, state_dir(), on_step=lambda message: status.update(message))
    for task in result.run.tasks:
        took = "unfinished" if task.duration_s is None else f"{task.duration_s:6.1f} s"
        console.print(f"  {took}  {task.name}")
    console.print(f"loop iteration done in {result.run.elapsed_s:.0f} s")
    typer.echo(f"run report: {result.report}")
