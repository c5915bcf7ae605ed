"""Data-parallel fine-tuning of Ultralytics detectors under ``torchrun``: the launcher side.

Ultralytics' own trainer refuses DDP without CUDA, so :mod:`cvops.training.ddp_worker` runs a
plain PyTorch loop around Ultralytics' ``DetectionModel``, its loss and its data loaders, one
process per rank (``gloo`` on CPU, ``nccl`` on GPU). This module holds what the parent process
needs and nothing that imports torch: the run's config, the summary and progress-event contracts,
the launcher (:func:`train_ddp`) that starts ``python -m torch.distributed.run`` and turns a failed
rank into one line, and a rich view of rank 0's progress.

Files under ``out_dir``: ``train_config.json`` (what ran), ``weights/last.pt`` and
``weights/best.pt`` (Ultralytics checkpoints; ``last.pt`` also holds the exact resume state),
``summary.json`` (:class:`DdpTrainSummary`), ``logs/rank_<N>.log`` (each rank's output) and
``logs/torchrun.log``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cvops.errors import InvalidInputError, TrainingError
from cvops.processes import die_with_parent

logger = logging.getLogger(__name__)

WORKER_MODULE = "cvops.training.ddp_worker"
CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "summary.json"
LOGS_DIR = "logs"
WEIGHTS_DIR = "weights"
RESUME_KEY = "cvops_resume"  # the exact training state inside last.pt, next to Ultralytics' keys

Optimizer = Literal["adamw", "sgd"]
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True, slots=True)
class DdpTrainConfig:
    """One data-parallel training run; the same object on every rank (sent as JSON).

    Attributes:
        data_yaml: Ultralytics dataset file (absolute, see :func:`resolve_data_yaml`).
        model: A checkpoint (``.pt``, fine-tuned) or a model config (``yolov8n.yaml``, random init).
        out_dir: Run folder (weights, logs, summary).
        epochs: Total epochs (a resumed run continues up to this many).
        imgsz: Training and validation image size in pixels, a multiple of 32.
        batch: Global batch: images per step summed over ranks; each rank takes ``batch / nproc``.
        nproc: Ranks (processes); on GPU one per device.
        threads_per_rank: Intra-op threads of each rank on CPU (``torch.set_num_threads``).
        seed: Seed; the model init and shuffling use it as is, augmentation ``(seed, epoch, rank)``.
        patience: Stop after this many epochs without a better validation mAP50-95.
        resume: Continue from ``out_dir/weights/last.pt`` (its weights, optimizer, EMA, epoch).
        tracking_uri: MLflow tracking URI for per-epoch metrics; None logs nothing.
        experiment: MLflow experiment name.
        optimizer: ``adamw`` or ``sgd`` (Nesterov).
        lr0: Initial learning rate; None takes Ultralytics' choice (AdamW: fitted to the class
            count, ``0.002 * 5 / (4 + nc)``; SGD: 0.01).
        warmup_epochs: Linear learning-rate warmup, in epochs (capped to leave one regular epoch).
        close_mosaic: Turn mosaic augmentation off for the last this many epochs.
        nominal_batch: Gradients are accumulated up to about this many images per optimizer step,
            as Ultralytics does (its ``nbs``); weight decay is scaled to match.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA where it has a device per rank).
        workers: Data-loader worker processes per rank (0 loads in the rank itself).
        collective_timeout_s: How long a rank waits in a collective (rank 0 validating, a hung peer).
    """

    data_yaml: Path
    model: str
    out_dir: Path
    epochs: int = 10
    imgsz: int = 640
    batch: int = 16
    nproc: int = 1
    threads_per_rank: int = 1
    seed: int = 0
    patience: int = 100
    resume: bool = False
    tracking_uri: str | None = None
    experiment: str = "cvops-train"
    optimizer: Optimizer = "adamw"
    lr0: float | None = None
    warmup_epochs: float = 3.0
    close_mosaic: int = 10
    nominal_batch: int = 64
    device: Device = "auto"
    workers: int = 0
    collective_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        """Reject out-of-range values with what was expected."""
        for name in ("epochs", "batch", "nproc", "threads_per_rank", "patience", "nominal_batch"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise InvalidInputError(f"imgsz: expected a positive multiple of 32, got {self.imgsz}")
        if self.batch % self.nproc:
            raise InvalidInputError(
                f"batch: the global batch must split evenly over {self.nproc} ranks, got {self.batch}"
            )
        if self.optimizer not in ("adamw", "sgd"):
            raise InvalidInputError(f"optimizer: expected 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidInputError(f"device: expected 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.lr0 is not None and self.lr0 <= 0:
            raise InvalidInputError(f"lr0: expected > 0, got {self.lr0}")
        for name in ("warmup_epochs", "close_mosaic", "seed", "workers"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name}: expected >= 0, got {getattr(self, name)}")
        if self.collective_timeout_s <= 0:
            raise InvalidInputError(f"collective_timeout_s: expected > 0, got {self.collective_timeout_s}")

    @property
    def per_rank_batch(self) -> int:
        """Images each rank takes per step."""
        return self.batch // self.nproc

    @property
    def last_checkpoint(self) -> Path:
        """``weights/last.pt``: written every epoch, resumed from."""
        return self.out_dir / WEIGHTS_DIR / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        """``weights/best.pt``: the epoch with the best validation mAP50-95."""
        return self.out_dir / WEIGHTS_DIR / "best.pt"

    def to_json(self) -> str:
        """Serialize for the ranks (paths as strings)."""
        return json.dumps({key: str(v) if isinstance(v, Path) else v for key, v in _items(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> DdpTrainConfig:
        """Read what :meth:`to_json` wrote."""
        values = json.loads(text)
        return cls(**{**values, "data_yaml": Path(values["data_yaml"]), "out_dir": Path(values["out_dir"])})


def _items(config: DdpTrainConfig) -> Iterator[tuple[str, object]]:
    for spec in dataclasses.fields(config):
        yield spec.name, getattr(config, spec.name)


def resolve_data_yaml(path: Path) -> Path:
    """Return the absolute dataset file for ``path``: a ``data.yaml``, or a folder holding one.

    Raises:
        InvalidInputError: When neither exists.
    """
    if path.is_dir():
        candidates = [path / name for name in ("data.yaml", "data.yml") if (path / name).is_file()]
        if not candidates:
            raise InvalidInputError(f"--data: {path}: expected a folder with a data.yaml, found none")
        return candidates[0].resolve()
    if not path.is_file():
        raise InvalidInputError(f"--data: {path}: no such dataset file or folder")
    if path.suffix not in (".yaml", ".yml"):
        raise InvalidInputError(
            f"--data: {path}: expected a .yaml dataset file, got {path.suffix or 'no suffix'}"
        )
    return path.resolve()


def check_model_source(model: str, tracking_uri: str | None = None) -> str:
    """Return ``model`` as the ranks should load it: a checkpoint made absolute, or a config name.

    A registered model (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``) resolves through the
    MLflow registry at ``tracking_uri`` to the checkpoint its FP32 package carries.

    Raises:
        InvalidInputError: A ``.pt`` that does not exist, or neither ``.pt`` nor ``.yaml``, or a
            registered package without a checkpoint.
    """
    if model.startswith("models:/"):
        from cvops.registry.mlflow_registry import resolve_model_uri
        from cvops.training.variants import package_checkpoint

        return str(package_checkpoint(resolve_model_uri(model, tracking_uri)).resolve())
    path = Path(model)
    if path.suffix == ".pt":
        if not path.is_file():
            raise InvalidInputError(f"--model: {model}: no such checkpoint file")
        return str(path.resolve())
    if path.suffix not in (".yaml", ".yml"):
        raise InvalidInputError(
            f"--model: expected a checkpoint (.pt) or a model config (.yaml), got {model}"
        )
    return str(path.resolve()) if path.is_file() else model  # a bare name is one of Ultralytics' configs


# --- contracts: progress events (rank 0 -> launcher) and the summary file -------------------------

EventKind = Literal["start", "batch", "epoch", "end"]


@dataclass(frozen=True, slots=True)
class TrainEvent:
    """One progress report of rank 0, sent as a JSON line on its standard output.

    Attributes:
        kind: ``start`` (of an epoch), ``batch``, ``epoch`` (validated) or ``end`` (of the run).
        epoch: 0-based epoch.
        epochs: Total epochs of the run.
        batch: Batches done in this epoch.
        batches: Batches per epoch.
        loss: Mean training loss so far in this epoch (sum of the loss terms, per image).
        metrics: On ``epoch``: validation metrics (``map50_95``, ``map50``, ...) and timings.
    """

    kind: EventKind
    epoch: int
    epochs: int
    batch: int = 0
    batches: int = 0
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_line(self) -> str:
        """One JSON line (no newline)."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> TrainEvent | None:
        """Parse a line of :meth:`to_line`; None for anything else (a library printing)."""
        try:
            values = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(values, dict) or values.get("kind") not in ("start", "batch", "epoch", "end"):
            return None
        return cls(**values)


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EpochRecord(_Contract):
    """One finished epoch (0-based ``epoch``); times in seconds, metrics on the validation split."""

    epoch: int = Field(ge=0)
    train_time_s: float = Field(ge=0)
    val_time_s: float = Field(ge=0)
    epoch_time_s: float = Field(ge=0)
    loss: dict[str, float]
    map50_95: float
    map50: float
    precision: float
    recall: float
    learning_rate: float


class DdpTrainSummary(_Contract):
    """``summary.json``: what a run did, written by rank 0 when it ends.

    ``epochs`` holds every epoch of the run, also those before a resume; ``final`` is the last
    epoch's validation, ``best`` the best one (the weights in ``best.pt``).
    """

    world_size: int = Field(ge=1)
    threads_per_rank: int = Field(ge=1)
    device: str
    backend: str
    global_batch: int = Field(ge=1)
    per_rank_batch: int = Field(ge=1)
    accumulate: int = Field(ge=1)
    model: str
    data_yaml: str
    epochs_planned: int = Field(ge=1)
    start_epoch: int = Field(ge=0)
    epochs_completed: int = Field(ge=0)
    is_stopped_early: bool
    best_epoch: int = Field(ge=0)
    final: EpochRecord
    best: EpochRecord
    epochs: list[EpochRecord]
    mean_epoch_time_s: float
    mean_train_time_s: float
    total_time_s: float
    state_sha256_per_rank: list[str]
    is_state_identical_across_ranks: bool
    last_checkpoint: str
    best_checkpoint: str
    mlflow_run_id: str | None = None


def read_summary(out_dir: Path) -> DdpTrainSummary:
    """Read ``summary.json`` of a finished run."""
    return DdpTrainSummary.model_validate_json((out_dir / SUMMARY_FILE).read_text())


# --- the launcher ---------------------------------------------------------------------------------


def torchrun_command(config: DdpTrainConfig, config_file: Path, state_dir: Path) -> list[str]:
    """The ``python -m torch.distributed.run`` command line that starts every rank on this machine."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
        "--nproc-per-node", str(config.nproc),
        "--log-dir", str(config.out_dir / LOGS_DIR / "torchrun"),  # else it leaves folders in /tmp
        "-m", WORKER_MODULE, str(config_file), str(state_dir),
    ]  # fmt: skip


def rank_log(out_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` writes its output."""
    return out_dir / LOGS_DIR / f"rank_{rank}.log"


def rank_error_file(out_dir: Path, rank: int) -> Path:
    """Where a failing rank writes its one-line error (JSON: rank, error, time)."""
    return out_dir / LOGS_DIR / f"rank_{rank}.error.json"


def train_ddp(
    config: DdpTrainConfig,
    state_dir: Path,
    on_event: Callable[[TrainEvent], None] | None = None,
) -> DdpTrainSummary:
    """Run ``config`` on ``config.nproc`` ranks with torchrun and return the summary.

    Args:
        config: The run.
        state_dir: Folder for library state, as for :func:`cvops.offline.configure_offline`.
        on_event: Called with each progress event of rank 0, in order.

    Raises:
        InvalidInputError: ``resume`` without a ``last.pt`` in ``out_dir``.
        TrainingError: A rank failed; the message names the rank, its error and its log.
    """
    if config.resume and not config.last_checkpoint.is_file():
        raise InvalidInputError(f"--resume: {config.last_checkpoint}: no checkpoint to resume from")
    logs = config.out_dir / LOGS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    for stale in [*logs.glob("rank_*.error.json"), config.out_dir / SUMMARY_FILE]:
        stale.unlink(missing_ok=True)
    config_file = config.out_dir / CONFIG_FILE
    config_file.write_text(config.to_json())
    env = dict(os.environ)  # the ranks inherit everything, plus:
    env["OMP_NUM_THREADS"] = str(config.threads_per_rank)  # else torchrun forces 1 and warns
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # single machine: keep gloo's traffic on loopback
    env.setdefault("PYTHONUNBUFFERED", "1")
    command = torchrun_command(config, config_file, state_dir)
    logger.info("starting %s", " ".join(command))
    with (
        (logs / "torchrun.log").open("wb") as torchrun_log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=torchrun_log, env=env, preexec_fn=die_with_parent
        ) as process,
    ):
        try:
            _forward_events(process.stdout, on_event)
            code = process.wait()
        except BaseException:  # KeyboardInterrupt included: never leave ranks behind
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            process.kill()
            raise
    if code != 0:
        raise TrainingError(describe_failure(config.out_dir, code))
    if not (config.out_dir / SUMMARY_FILE).is_file():
        raise TrainingError(f"training ended without {config.out_dir / SUMMARY_FILE}; see {logs}")
    return read_summary(config.out_dir)


def _forward_events(stream: IO[bytes] | None, on_event: Callable[[TrainEvent], None] | None) -> None:
    if stream is None:
        return
    for raw in stream:
        event = TrainEvent.from_line(raw.decode(errors="replace").strip())
        if event is not None and on_event is not None:
            on_event(event)


_TORCHRUN_FAILURE = re.compile(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.DOTALL)


def describe_failure(out_dir: Path, code: int) -> str:
    """One line saying which rank failed first, why, and where its log is.

    The first rank to write an error file is the cause; peers that fail after it (a closed
    connection) or that torchrun stops come later. A rank killed by a signal writes no file, so
    torchrun's own report (``rank : N ... exitcode : -9``) names it instead.
    """
    errors = []
    for path in (out_dir / LOGS_DIR).glob("rank_*.error.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            record = json.loads(path.read_text())
            errors.append((float(record["time"]), int(record["rank"]), str(record["error"])))
    if errors:
        _, rank, error = min(errors)
        return f"rank {rank} failed: {error} (log: {rank_log(out_dir, rank)})"
    torchrun_log = out_dir / LOGS_DIR / "torchrun.log"
    text = torchrun_log.read_text(errors="replace") if torchrun_log.is_file() else ""
    match = _TORCHRUN_FAILURE.search(text)
    if match:
        rank, exit_code = int(match.group(1)), int(match.group(2))
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with {exit_code}"
        return f"rank {rank} {how} (log: {rank_log(out_dir, rank)}; torchrun: {torchrun_log})"
    return f"torchrun exited with {code} before any rank reported (log: {torchrun_log})"


# --- progress ------------------------------------------------------------------------------------


class ProgressView:
    """Draws rank 0's progress events as a rich progress bar, one line per validated epoch."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressView:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, event: TrainEvent) -> None:
        """Show one event."""
        label = f"epoch {event.epoch + 1}/{event.epochs}"
        loss = "" if event.loss is None else f"loss {event.loss:.3f}"
        if event.kind == "start":
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(label, total=event.batches, loss=loss)
        elif event.kind == "batch" and self._task is not None:
            self._progress.update(self._task, completed=event.batch, loss=loss)
        elif event.kind == "epoch":
            m = event.metrics
            self._progress.console.print(
                f"{label}  mAP50-95 {m.get('map50_95', 0.0):.3f}  mAP50 {m.get('map50', 0.0):.3f}  "
                f"{loss}  train {m.get('train_time_s', 0.0):.1f} s  val {m.get('val_time_s', 0.0):.1f} s",
                highlight=False,
            )
