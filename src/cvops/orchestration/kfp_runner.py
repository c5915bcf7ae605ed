"""Compile, run locally (kfp.local) or submit (kfp.Client) a pipeline defined in ``pipelines/``.

A pipeline file ``pipelines/NAME.py`` defines a ``@dsl.pipeline`` function named ``NAME``; it
imports its steps from ``components/``, so the folder above ``pipelines/`` goes on ``sys.path``.
kfp is imported inside functions only.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvops.errors import InvalidInputError, PipelineError

logger = logging.getLogger(__name__)

ParamValue = str | int | float | bool
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task of a local run.

    Attributes:
        name: Task name (the component's, with a suffix when it runs more than once).
        started_at: Unix time its folder was created.
        finished_at: Unix time its executor output was written; None when it never finished.
        outputs: Its parameter outputs and artifact URIs/metadata (executor_output.json).
    """

    name: str
    started_at: float
    finished_at: float | None
    outputs: dict[str, Any]

    @property
    def duration_s(self) -> float | None:
        """Return how long the task ran, in seconds; None when it never finished."""
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class LocalRun:
    """A finished local pipeline run.

    Attributes:
        pipeline: Pipeline name.
        run_dir: The run's folder under the pipeline root (one sub-folder per task).
        is_succeeded: Whether every task succeeded.
        error: The failure's message, when one failed.
        tasks: The tasks, in start order.
        outputs: The pipeline's own outputs (by name), when it succeeded.
        elapsed_s: Wall time of the whole run.
    """

    pipeline: str
    run_dir: Path
    is_succeeded: bool
    error: str | None
    tasks: tuple[TaskRecord, ...]
    outputs: dict[str, Any]
    elapsed_s: float


def load_pipeline(path: Path) -> Any:
    """Import ``path`` and return its pipeline function (the one named like the file).

    Raises:
        InvalidInputError: A missing file or no pipeline function of that name in it.
    """
    if not path.is_file():
        raise InvalidInputError(f"--pipeline: {path}: no such file")
    repo_root = str(path.resolve().parent.parent)
    if repo_root not in sys.path:
        sys.path.insert(0, repo_root)
    spec = importlib.util.spec_from_file_location(f"pipelines.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"--pipeline: {path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, path.stem, None)
    if function is None or not hasattr(function, "pipeline_spec"):
        raise InvalidInputError(f"--pipeline: {path}: expected a @dsl.pipeline function named {path.stem}")
    return function


def compile_pipeline(path: Path, out_file: Path) -> Path:
    """Compile the pipeline in ``path`` to KFP IR YAML at ``out_file`` and return it."""
    from kfp import compiler

    out_file.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(load_pipeline(path), str(out_file))
    return out_file


def run_local(path: Path, params: Mapping[str, ParamValue], pipeline_root: Path) -> LocalRun:
    """Run the pipeline in ``path`` with kfp.local's subprocess runner in this environment.

    Steps run one after another in subprocesses of this Python (no container, no pip).
    A failed step ends the run; the returned record says which and why.

    Args:
        path: Pipeline file.
        params: Pipeline parameters by name.
        pipeline_root: Folder for the runs' artifacts (a new folder per run inside).
    """
    from kfp import local

    function = load_pipeline(path)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    before = set(pipeline_root.iterdir())
    started = time.time()
    error: str | None = None
    outputs: dict[str, Any] = {}
    clock = _TaskClock()
    root_logger = logging.getLogger()
    root_logger.addFilter(clock)  # kfp.local replaces the root handlers, not its filters
    try:
        result = function(**params)
    except RuntimeError as failure:  # kfp.local raises RuntimeError naming the failed task
        text = _ANSI.sub("", str(failure)).strip()
        error = text.splitlines()[0] if text else repr(failure)
    else:
        outputs = _pipeline_outputs(result)
    finally:
        root_logger.removeFilter(clock)
    elapsed = time.time() - started
    created = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    if not created:
        raise PipelineError(f"{path.stem}: kfp.local wrote no run folder under {pipeline_root}")
    run_dir = created[-1]
    return LocalRun(
        path.stem, run_dir, error is None, error, read_tasks(run_dir, clock.times), outputs, elapsed
    )


class _TaskClock(logging.Filter):
    """Notes when kfp.local logs a task's start (``Executing task 'x'``) and end (``Task 'x' finished``)."""

    _START = re.compile(r"Executing task '([^']+)'")
    _END = re.compile(r"Task '([^']+)' finished with status")

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[str, tuple[float, float | None]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = _ANSI.sub("", record.getMessage())
        if match := self._START.search(message):
            self.times[match.group(1)] = (record.created, None)
        elif (match := self._END.search(message)) and match.group(1) in self.times:
            self.times[match.group(1)] = (self.times[match.group(1)][0], record.created)
        return True


def _pipeline_outputs(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    named = getattr(result, "outputs", None)
    if isinstance(named, Mapping):
        return {str(key): _plain(value) for key, value in named.items()}
    return {"Output": _plain(result)}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    uri = getattr(value, "uri", None)
    return uri if isinstance(uri, str) else repr(value)


def read_tasks(
    run_dir: Path, times: dict[str, tuple[float, float | None]] | None = None
) -> tuple[TaskRecord, ...]:
    """Return the tasks of a local run folder, in start order, with their outputs.

    Args:
        run_dir: The run's folder (one sub-folder per task).
        times: Start and end time by task name, as logged by kfp.local; without them a task's
            folder creation and its executor output's write time stand in.
    """
    tasks = []
    for folder in (p for p in run_dir.iterdir() if p.is_dir()):
        output_file = folder / "executor_output.json"
        outputs: dict[str, Any] = json.loads(output_file.read_text()) if output_file.is_file() else {}
        finished = output_file.stat().st_mtime if output_file.is_file() else None
        started = folder.stat().st_ctime
        if times and folder.name in times:
            started, logged_end = times[folder.name]
            finished = logged_end if output_file.is_file() else None
        tasks.append(TaskRecord(folder.name, started, finished, outputs))
    return tuple(sorted(tasks, key=lambda task: task.started_at))


def submit(
    path: Path,
    host: str,
    params: Mapping[str, ParamValue],
    experiment: str = "cvops",
    run_name: str | None = None,
) -> str:
    """Compile the pipeline and start a run on the Kubeflow Pipelines API at ``host``; return the run id.

    Raises:
        PipelineError: When the API refuses the run or cannot be reached.
    """
    import tempfile

    import kfp
    import urllib3
    from kfp_server_api.exceptions import ApiException

    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(path, Path(tmp) / f"{path.stem}.yaml")
        try:
            client = kfp.Client(host=host)
            run = client.create_run_from_pipeline_package(
                str(package), arguments=dict(params), run_name=run_name, experiment_name=experiment
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise PipelineError(f"{host}: could not start {path.stem}: {error}") from error
    return str(run.run_id)
