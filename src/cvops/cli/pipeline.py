"""``cvops pipeline``: compile, run locally (kfp.local) or submit (Kubeflow) a pipeline of ``pipelines/``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.status import Status

from cvops.cli.app import app, state_dir
from cvops.errors import InvalidInputError, PipelineError
from cvops.orchestration.kfp_runner import ParamValue

pipeline_app = typer.Typer(help="Compile, run locally or submit a Kubeflow pipeline.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")

DEFAULT_PIPELINE = Path("pipelines/continuous_training.py")
PIPELINE_HELP = "Pipeline file (pipelines/NAME.py defining a @dsl.pipeline function NAME)."
PARAM_HELP = "Pipeline parameter KEY=VALUE (VALUE read as JSON when it parses: 3, 0.5, true); repeat."


def parse_params(items: list[str]) -> dict[str, ParamValue]:
    """Return ``KEY=VALUE`` items as parameters; a VALUE that parses as a JSON scalar is typed."""
    params: dict[str, ParamValue] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param: expected KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        params[key.strip()] = value if isinstance(value, str | int | float | bool) else text
    return params


@pipeline_app.command("compile")
def compile_command(
    pipeline: Path = typer.Option(DEFAULT_PIPELINE, "--pipeline", "-p", help=PIPELINE_HELP),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="YAML to write; build/pipelines/NAME.yaml by default."
    ),
) -> None:
    """Compile a pipeline to Kubeflow Pipelines IR YAML."""
    from cvops.orchestration.kfp_runner import compile_pipeline

    target = out or Path("build/pipelines") / f"{pipeline.stem}.yaml"
    typer.echo(str(compile_pipeline(pipeline, target)))


@pipeline_app.command("run-local")
def run_local_command(
    pipeline: Path = typer.Option(DEFAULT_PIPELINE, "--pipeline", "-p", help=PIPELINE_HELP),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    pipeline_root: Path | None = typer.Option(
        None, help="Artifacts folder; STATE_DIR/pipeline-root by default (CVOPS_STATE_DIR)."
    ),
) -> None:
    """Run a pipeline here with kfp.local (each step a subprocess of this environment)."""
    from cvops.orchestration.kfp_runner import run_local

    console = Console(stderr=True)
    root = pipeline_root or state_dir() / "pipeline-root"
    params = parse_params(param)
    done = threading.Event()
    with console.status(f"running {pipeline.stem}") as status:
        watcher = threading.Thread(target=_watch, args=(root, status, done, pipeline.stem), daemon=True)
        watcher.start()
        try:
            run = run_local(pipeline, params, root)
        finally:
            done.set()
    for task in run.tasks:
        took = "unfinished" if task.duration_s is None else f"{task.duration_s:.1f} s"
        console.print(f"  {task.name}: {took}")
    if not run.is_succeeded:
        raise PipelineError(f"{run.pipeline}: {run.error} (artifacts and logs: {run.run_dir})")
    console.print(f"{run.pipeline} succeeded in {run.elapsed_s:.0f} s; artifacts in {run.run_dir}")
    typer.echo(json.dumps(run.outputs, default=str))


def _watch(root: Path, status: Status, done: threading.Event, name: str) -> None:
    """Show the newest task folder of the newest run as the status line until ``done``."""
    while not done.wait(1.0):
        runs = sorted((p for p in root.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
        tasks = (
            sorted((p for p in runs[-1].iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
            if runs
            else []
        )
        if tasks:
            status.update(f"running {name}: {tasks[-1].name} ({len(tasks)} steps started)")


@pipeline_app.command("submit")
def submit_command(
    host: str = typer.Option(..., "--host", help="Kubeflow Pipelines API URL, e.g. http://localhost:8080."),
    pipeline: Path = typer.Option(DEFAULT_PIPELINE, "--pipeline", "-p", help=PIPELINE_HELP),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    experiment: str = typer.Option("cvops", help="Kubeflow experiment name."),
    run_name: str | None = typer.Option(None, help="Run name; Kubeflow picks one by default."),
) -> None:
    """Compile a pipeline and start a run on a Kubeflow Pipelines cluster; print the run id."""
    from cvops.orchestration.kfp_runner import submit

    typer.echo(submit(pipeline, host, parse_params(param), experiment, run_name))
