"""One rank of a data-parallel training run: the ``torchrun`` entry point of :mod:`cvops.training.ddp`.

``python -m torch.distributed.run --standalone --nproc-per-node N -m cvops.training.ddp_worker
CONFIG_JSON STATE_DIR`` starts N of these (:func:`cvops.training.ddp.train_ddp` does it for you).
Each rank writes its output to ``logs/rank_<N>.log``; rank 0 also validates, saves checkpoints,
logs to MLflow and reports progress: JSON lines on its standard output, or a rich progress bar
when that is a terminal.

How the ranks stay in step:

- Identical start: every rank seeds with ``seed`` before building the model, and DDP broadcasts
  rank 0's parameters and buffers when it wraps the model.
- The same global batch for any world size: each rank takes ``batch / world`` images per step from
  a ``DistributedSampler`` shard. The sampler's shuffle seed is ``seed`` on every rank (shards
  overlap otherwise), so every rank has the same number of steps. DDP averages gradients over the
  ranks; the YOLO loss (a sum over the rank's images) is multiplied by the world size, so the
  gradient is a single process's on the whole global batch (Ultralytics' convention). Gradients are
  accumulated to about ``nominal_batch`` images per optimizer step, as Ultralytics does, with the
  all-reduce skipped (``no_sync``) on steps that only accumulate; every epoch ends with a step.
- Identical parameters: the same all-reduced gradients go into the same optimizer on every rank.
  BatchNorm running statistics are rank-local within an epoch and averaged over ranks at its end,
  so the whole ``state_dict`` agrees; the summary records each rank's SHA-256 of it.
- Augmentation differs per rank: Python, NumPy and torch are reseeded from ``(seed, epoch, rank)``
  at each epoch start, which also makes a resumed epoch draw what it would have drawn.

Exit: a rank that fails writes ``logs/rank_<N>.error.json`` and leaves with exit code 1; a rank
that finishes calls ``destroy_process_group()`` and leaves with ``os._exit(0)``, since ranks that
return through interpreter shutdown sometimes abort in gloo's teardown (exit -6, "terminate called
without an active exception").
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from rich.console import Console

from cvops.errors import BackendUnavailableError, CvopsError, InvalidInputError
from cvops.offline import configure_offline
from cvops.processes import die_with_parent
from cvops.training.ddp import (
    RESUME_KEY,
    SUMMARY_FILE,
    DdpTrainConfig,
    DdpTrainSummary,
    EpochRecord,
    ProgressView,
    TrainEvent,
    rank_error_file,
    rank_log,
)

logger = logging.getLogger(__name__)

# Ultralytics' training recipe, kept as its trainer has it.
_GRAD_CLIP_NORM = 10.0
_EMA_ATTRIBUTES = ("yaml", "nc", "args", "names", "stride", "class_weights")
_METRIC_KEYS = {
    "map50_95": "metrics/mAP50-95(B)",
    "map50": "metrics/mAP50(B)",
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
}

Emit = Callable[[TrainEvent], None]


def main(argv: list[str] | None = None) -> None:
    """Run this rank (arguments: the config JSON file and the library state folder); never returns."""
    args = sys.argv[1:] if argv is None else argv
    config = DdpTrainConfig.from_json(Path(args[0]).read_text())
    # torchrun's contract: these name this process's place in the job.
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    die_with_parent()
    events = _redirect_output(rank_log(config.out_dir, rank), keep_stdout=rank == 0)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    configure_offline(Path(args[1]))
    sink = _EventSink(events)
    try:
        _run(config, rank, world, local_rank, sink)
    except BaseException as error:  # the process boundary: record why, then leave non-zero
        sink.close()
        _record_failure(config.out_dir, rank, error)
        os._exit(1)
    sink.close()
    _flush()
    os._exit(0)


def _redirect_output(log: Path, keep_stdout: bool) -> TextIO | None:
    """Send this process's stdout and stderr (fds 1 and 2) to ``log``; return the old stdout if kept.

    At the file-descriptor level, so native libraries' messages land in the log too.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    _flush()
    kept = os.fdopen(os.dup(1), "w", buffering=1) if keep_stdout else None
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return kept


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class _EventSink:
    """Rank 0's progress: JSON lines for the launcher, or a rich bar when run in a terminal."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._view = ProgressView(Console(file=stream)) if stream is not None and stream.isatty() else None
        if self._view is not None:
            self._view.__enter__()

    def __call__(self, event: TrainEvent) -> None:
        if self._view is not None:
            self._view(event)
        elif self._stream is not None:
            self._stream.write(event.to_line() + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._view is not None:
            self._view.__exit__(None, None, None)
            self._view = None
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.flush()


def _record_failure(out_dir: Path, rank: int, error: BaseException) -> None:
    logger.error("rank %d failed", rank, exc_info=error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    # Our own errors are written to be read as they are; others need their type to make sense.
    message = first_line if isinstance(error, CvopsError) else f"{type(error).__name__}: {first_line}"
    with contextlib.suppress(OSError):
        record = {"rank": rank, "error": message.rstrip(": "), "time": time.time()}
        rank_error_file(out_dir, rank).write_text(json.dumps(record))
    _flush()


def _run(config: DdpTrainConfig, rank: int, world: int, local_rank: int, emit: Emit) -> None:
    import torch
    import torch.distributed as dist

    device = _pick_device(config, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(config.threads_per_rank)
    dist.init_process_group(
        backend,
        timeout=timedelta(seconds=config.collective_timeout_s),
        device_id=device if device.type == "cuda" else None,  # binds NCCL's communicator to this GPU
    )
    logger.info("rank %d/%d on %s (%s), %d threads", rank, world, device, backend, torch.get_num_threads())
    _RankTrainer(config, rank, world, device, backend).fit(emit)
    dist.barrier()
    dist.destroy_process_group()


def _pick_device(config: DdpTrainConfig, local_rank: int) -> Any:
    import torch

    gpus = torch.cuda.device_count()
    if config.device == "cuda" and gpus < config.nproc:
        raise InvalidInputError(f"device: cuda needs a GPU per rank ({config.nproc}), found {gpus}")
    if config.device == "cuda" or (config.device == "auto" and 0 < config.nproc <= gpus):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _seed_everything(*key: int) -> None:
    """Seed Python, NumPy and torch from ``key`` (e.g. ``(seed,)`` or ``(seed, epoch, rank)``)."""
    import torch

    state = np.random.SeedSequence(list(key)).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[0]))  # noqa: NPY002  (Ultralytics' augmentations draw from the global state)
    torch.manual_seed(int(state[1]))


class _RankTrainer:
    """The model, data, optimizer and loop of one rank."""

    def __init__(self, config: DdpTrainConfig, rank: int, world: int, device: Any, backend: str) -> None:
        import torch
        from ultralytics.cfg import DEFAULT_CFG, get_cfg
        from ultralytics.data.utils import check_det_dataset
        from ultralytics.utils.torch_utils import ModelEMA, torch_distributed_zero_first

        from cvops.detection.backends.ultralytics import configure_ultralytics

        configure_ultralytics()
        self.config, self.rank, self.world, self.device, self.backend = config, rank, world, device, backend
        self.is_main = rank == 0
        with torch_distributed_zero_first(rank):  # rank 0 checks the dataset (and writes caches) first
            self.data = check_det_dataset(str(config.data_yaml))
        self.cfg = get_cfg(
            DEFAULT_CFG,
            {
                "task": "detect",
                "mode": "train",
                "model": config.model,
                "data": str(config.data_yaml),
                "epochs": config.epochs,
                "imgsz": config.imgsz,
                "batch": config.batch,
                "seed": config.seed,
                "workers": config.workers,
                "patience": config.patience,
                "optimizer": "AdamW" if config.optimizer == "adamw" else "SGD",
                "close_mosaic": config.close_mosaic,
                "warmup_epochs": config.warmup_epochs,
                "nbs": config.nominal_batch,
                "plots": False,
                "verbose": False,
                "amp": False,
            },
        )
        resume = self._read_resume_state() if config.resume else None
        _seed_everything(config.seed)  # the same initial weights on every rank
        source = str(config.last_checkpoint) if resume is not None else config.model
        self.model, self.is_rtdetr = _build_model(source, self.data, self.cfg)
        if resume is not None:
            self.model.load_state_dict(resume["model"])
        self.model.to(device)
        self.stride = max(int(self.model.stride.max()), 32)
        self.ddp_model: Any = self.model
        if world > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                # YOLOv8/11 and RT-DETR use every trainable parameter in training: no graph walk.
                find_unused_parameters=False,
                forward_sync_buffers=False,  # BatchNorm statistics are averaged once per epoch instead
            )
        with torch_distributed_zero_first(rank):
            self.train_loader = self._build_loader(str(self.data["train"]), config.per_rank_batch, train=True)
        # DistributedSampler shuffles with its seed; it must be the same on every rank.
        self.train_loader.sampler.seed = config.seed
        self.batches = len(self.train_loader)
        self.accumulate = min(
            max(round(config.nominal_batch / config.batch), 1), self.batches * config.epochs
        )
        self.optimizer = self._build_optimizer()
        self.ema = ModelEMA(self.model) if self.is_main else None
        self.val_loader = (
            self._build_loader(str(self.data["val"]), config.per_rank_batch * 2, train=False)
            if self.is_main
            else None
        )
        self.validator = self._build_validator() if self.is_main else None
        self.start_epoch = 0
        self.history: list[EpochRecord] = []
        self.best_epoch = 0
        self.mlflow_run_id: str | None = None
        if resume is not None:
            self._restore(resume)

    # --- building -------------------------------------------------------------------------------

    def _read_resume_state(self) -> dict[str, Any]:
        import torch

        checkpoint = torch.load(self.config.last_checkpoint, map_location="cpu", weights_only=False)
        state = checkpoint.get(RESUME_KEY) if isinstance(checkpoint, dict) else None
        if state is None:
            raise InvalidInputError(f"--resume: {self.config.last_checkpoint}: holds no resume state")
        if state["epochs_done"] >= self.config.epochs:
            raise InvalidInputError(
                f"--resume: {self.config.last_checkpoint} finished {state['epochs_done']} epochs; "
                f"expected --epochs above that, got {self.config.epochs}"
            )
        return dict(state)

    def _build_loader(self, images: str, batch: int, train: bool) -> Any:
        from ultralytics.data import build_dataloader, build_yolo_dataset
        from ultralytics.models.rtdetr.val import RTDETRDataset
        from ultralytics.utils import colorstr

        mode = "train" if train else "val"
        if self.is_rtdetr:
            dataset = RTDETRDataset(
                img_path=images, imgsz=self.cfg.imgsz, batch_size=batch, augment=train, hyp=self.cfg,
                rect=False, cache=None, single_cls=False, prefix=colorstr(f"{mode}: "), classes=None,
                data=self.data, fraction=1.0,
            )  # fmt: skip
        else:
            dataset = build_yolo_dataset(
                self.cfg, images, batch, self.data, mode=mode, rect=not train, stride=self.stride
            )
        return build_dataloader(
            dataset,
            batch,
            self.config.workers,
            shuffle=train,
            rank=self.rank if train else -1,
            pin_memory=self.device.type == "cuda",
            device=self.device,
        )

    def _build_optimizer(self) -> Any:
        import torch
        from torch import nn

        nc = int(self.data["nc"])
        is_adamw = self.config.optimizer == "adamw"
        lr = self.config.lr0 or (round(0.002 * 5 / (4 + nc), 6) if is_adamw else 0.01)
        decay = self.cfg.weight_decay * self.config.batch * self.accumulate / self.config.nominal_batch
        norms = tuple(v for k, v in nn.__dict__.items() if "Norm" in k)
        weights: list[Any] = []
        norm_weights: list[Any] = []
        biases: list[Any] = []
        for module_name, module in self.model.named_modules():
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad:
                    continue
                if "bias" in name:
                    biases.append(param)
                elif isinstance(module, norms) or "logit_scale" in f"{module_name}.{name}":
                    norm_weights.append(param)
                else:
                    weights.append(param)
        groups = [
            {"params": weights, "weight_decay": decay, "param_group": "weight"},
            {"params": norm_weights, "weight_decay": 0.0, "param_group": "bn"},
            {"params": biases, "weight_decay": 0.0, "param_group": "bias"},
        ]
        self.momentum = 0.9 if is_adamw else float(self.cfg.momentum)
        # Ultralytics starts the bias learning rate at 0.1 for SGD and at 0 for its AdamW choice.
        self.warmup_bias_lr = 0.0 if is_adamw else float(self.cfg.warmup_bias_lr)
        optimizer: Any
        if is_adamw:
            optimizer = torch.optim.AdamW(groups, lr=lr, betas=(self.momentum, 0.999), weight_decay=0.0)
        else:
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=self.momentum, nesterov=True)
        for group in optimizer.param_groups:
            group["initial_lr"] = lr
        logger.info("%s lr0=%g decay=%g accumulate=%d", type(optimizer).__name__, lr, decay, self.accumulate)
        return optimizer

    def _build_validator(self) -> Any:
        from ultralytics.models.rtdetr.val import RTDETRValidator
        from ultralytics.models.yolo.detect import DetectionValidator

        validator_class = RTDETRValidator if self.is_rtdetr else DetectionValidator
        validator = validator_class(
            dataloader=self.val_loader,
            save_dir=self.config.out_dir,
            args={
                "task": "detect",
                "mode": "val",
                "imgsz": self.config.imgsz,
                "plots": False,
                "verbose": False,
            },
        )
        validator.device, validator.data, validator.stride = self.device, self.data, self.stride
        return validator

    def _restore(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = int(state["epochs_done"])
        self.history = [EpochRecord.model_validate(record) for record in state["history"]]
        self.best_epoch = int(state["best_epoch"])
        self.mlflow_run_id = state.get("mlflow_run_id")
        if self.ema is not None:
            self.ema.ema.load_state_dict(state["ema"])
            self.ema.updates = int(state["ema_updates"])
        logger.info("resumed from %s after epoch %d", self.config.last_checkpoint, self.start_epoch)

    # --- the loop -------------------------------------------------------------------------------

    def fit(self, emit: Emit) -> None:
        """Train from ``start_epoch`` to the last epoch or an early stop; rank 0 writes the summary."""
        import torch.distributed as dist

        config = self.config
        tracker = (
            _MlflowLogger.start(config, self.mlflow_run_id) if self.is_main and config.tracking_uri else None
        )
        self.mlflow_run_id = tracker.run_id if tracker is not None else None
        start_time = time.perf_counter()
        is_stopped_early = False
        is_mosaic_closed = config.close_mosaic == 0
        epoch = self.start_epoch
        for epoch in range(self.start_epoch, config.epochs):
            epoch_start = time.perf_counter()
            _seed_everything(config.seed, epoch, self.rank)
            if not is_mosaic_closed and epoch >= config.epochs - config.close_mosaic:
                is_mosaic_closed = True
                self._close_mosaic()
            losses = self._train_epoch(epoch, emit)
            train_time_s = time.perf_counter() - epoch_start
            should_stop = False
            if self.is_main:
                record = self._validate_and_save(epoch, losses, train_time_s, epoch_start)
                if tracker is not None:
                    tracker.log_epoch(record)
                should_stop = epoch - self.best_epoch >= config.patience
                emit(TrainEvent("epoch", epoch, config.epochs, self.batches, self.batches,
                                sum(losses.values()), _event_metrics(record)))  # fmt: skip
            if self.world > 1:
                flag = [should_stop]
                dist.broadcast_object_list(flag, src=0)
                should_stop = bool(flag[0])
            if should_stop:
                is_stopped_early = epoch + 1 < config.epochs
                logger.info("early stop after epoch %d (best %d)", epoch, self.best_epoch)
                break
        hashes = self._gather_state_hashes()
        if self.is_main:
            summary = self._summary(epoch, is_stopped_early, time.perf_counter() - start_time, hashes)
            summary_file = config.out_dir / SUMMARY_FILE
            summary_file.write_text(summary.model_dump_json(indent=2))
            if tracker is not None:
                tracker.finish(summary)
            emit(TrainEvent("end", epoch, config.epochs, metrics=_event_metrics(summary.final)))

    def _close_mosaic(self) -> None:
        dataset = self.train_loader.dataset
        if hasattr(dataset, "mosaic"):
            dataset.mosaic = False
        if hasattr(dataset, "close_mosaic"):
            dataset.close_mosaic(hyp=copy.copy(self.cfg))
        self.train_loader.reset()

    def _train_epoch(self, epoch: int, emit: Emit) -> dict[str, float]:
        """One pass over this rank's shard; return the epoch's mean loss terms (this rank's images)."""
        import torch

        config, batches = self.config, self.batches
        lr_factor = _lr_factor(epoch, config.epochs, float(self.cfg.lrf))
        warmup_steps = _warmup_steps(config.warmup_epochs, config.epochs, batches)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lr_factor
        self.train_loader.sampler.set_epoch(epoch)
        self.ddp_model.train()
        if self.is_main:
            emit(TrainEvent("start", epoch, config.epochs, 0, batches))
        sums: dict[str, float] = {}
        last_step = epoch * batches - 1  # every epoch ends with an optimizer step
        accumulate = self.accumulate
        for i, batch in enumerate(self.train_loader):
            step = i + epoch * batches
            if step <= warmup_steps and warmup_steps:
                accumulate = self._warm_up(step, warmup_steps, lr_factor)
            is_update = step - last_step >= accumulate or i == batches - 1
            batch = self._to_device(batch)
            no_sync = self.world > 1 and not is_update
            with self.ddp_model.no_sync() if no_sync else contextlib.nullcontext():
                loss, items = self.ddp_model(batch)
                # A YOLO loss sums over the rank's images; DDP averages over ranks. RT-DETR's is a mean.
                (loss.sum() * (1 if self.is_rtdetr else self.world)).backward()
            if is_update:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=_GRAD_CLIP_NORM)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                if self.ema is not None:
                    self.ema.update(self.model)
                last_step = step
            for key, value in _loss_items(items).items():
                sums[key] = sums.get(key, 0.0) + value
            if self.is_main:
                mean = sum(sums.values()) / (i + 1)
                emit(TrainEvent("batch", epoch, config.epochs, i + 1, batches, mean))
        self._average_buffers()
        return {key: value / max(batches, 1) for key, value in sums.items()}

    def _warm_up(self, step: int, warmup_steps: int, lr_factor: float) -> int:
        """Ramp learning rates (bias from ``warmup_bias_lr``, others from 0) and SGD momentum."""
        points = [0, warmup_steps]
        for group in self.optimizer.param_groups:
            start = self.warmup_bias_lr if group["param_group"] == "bias" else 0.0
            group["lr"] = float(np.interp(step, points, [start, group["initial_lr"] * lr_factor]))
            if "momentum" in group:
                group["momentum"] = float(np.interp(step, points, [self.cfg.warmup_momentum, self.momentum]))
        return max(1, int(np.interp(step, points, [1, self.accumulate]).round()))

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        is_cuda = self.device.type == "cuda"
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                batch[key] = value.to(self.device, non_blocking=is_cuda)
        batch["img"] = batch["img"].float() / 255
        return batch

    def _average_buffers(self) -> None:
        """Average floating buffers (BatchNorm running statistics) over ranks: every rank then agrees."""
        import torch.distributed as dist

        if self.world == 1:
            return
        for buffer in self.model.buffers():
            if buffer.dtype.is_floating_point:
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer.div_(self.world)
            else:
                dist.broadcast(buffer, src=0)

    # --- rank 0: validation, checkpoints, summary -----------------------------------------------

    def _validate_and_save(
        self, epoch: int, losses: dict[str, float], train_time_s: float, epoch_start: float
    ) -> EpochRecord:
        assert self.ema is not None
        val_start = time.perf_counter()
        self.ema.update_attr(self.model, include=list(_EMA_ATTRIBUTES))
        metrics = self._validate(self.ema.ema)
        val_time_s = time.perf_counter() - val_start
        best = max(self.history, key=lambda r: r.map50_95) if self.history else None
        is_best = best is None or metrics["map50_95"] > best.map50_95
        if is_best:
            self.best_epoch = epoch
        record = EpochRecord(
            epoch=epoch,
            train_time_s=train_time_s,
            val_time_s=val_time_s,
            epoch_time_s=time.perf_counter() - epoch_start,  # checkpoint writing excluded
            loss=losses,
            learning_rate=float(self.optimizer.param_groups[0]["lr"]),
            **metrics,
        )
        self._save(epoch, record, is_best)
        self.history.append(record)
        logger.info("epoch %d: %s", epoch, record.model_dump_json())
        return record

    def _validate(self, model: Any) -> dict[str, float]:
        """mAP50-95, mAP50, precision and recall of ``model`` with Ultralytics' validator, on rank 0.

        The validator's pieces are called directly: its ``__call__`` gathers statistics from every
        rank, and only this one validates. On CPU the idle ranks' cores serve it meanwhile.
        """
        import torch

        validator, threads = self.validator, torch.get_num_threads()
        assert validator is not None
        assert self.val_loader is not None
        if self.device.type == "cpu":
            torch.set_num_threads(self.config.threads_per_rank * self.world)
        try:
            model.eval()
            validator.init_metrics(model)
            with torch.inference_mode():
                for batch in self.val_loader:
                    batch = validator.preprocess(batch)
                    validator.update_metrics(validator.postprocess(model(batch["img"])), batch)
            stats = validator.get_stats()
        finally:
            torch.set_num_threads(threads)
        return {name: float(stats.get(key, 0.0)) for name, key in _METRIC_KEYS.items()}

    def _save(self, epoch: int, record: EpochRecord, is_best: bool) -> None:
        """Write ``last.pt`` (with the resume state) and, when better, ``best.pt``.

        Both are Ultralytics checkpoints (``YOLO(path)``, ``cvops export`` load them): the EMA model
        in FP16 under ``ema``, the training arguments under ``train_args``.
        """
        import torch
        import ultralytics

        assert self.ema is not None
        ema = copy.deepcopy(self.ema.ema).half()
        ema.criterion = None
        best_map = max([r.map50_95 for r in self.history] + [record.map50_95])
        checkpoint: dict[str, Any] = {
            "epoch": epoch,
            "best_fitness": best_map,
            "model": None,
            "ema": ema,
            "updates": self.ema.updates,
            "optimizer": None,
            "train_args": dict(vars(self.cfg)),
            "train_metrics": {key: getattr(record, name) for name, key in _METRIC_KEYS.items()},
            "date": datetime.now().astimezone().isoformat(),
            "version": ultralytics.__version__,
            "license": "AGPL-3.0 (https://ultralytics.com/license)",
        }
        if is_best:
            _write_atomically(self.config.best_checkpoint, checkpoint)
        checkpoint[RESUME_KEY] = {
            "epochs_done": epoch + 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.ema.state_dict(),
            "ema_updates": self.ema.updates,
            "history": [r.model_dump() for r in [*self.history, record]],
            "best_epoch": self.best_epoch,
            "mlflow_run_id": self.mlflow_run_id,
            "torch_version": torch.__version__,
        }
        _write_atomically(self.config.last_checkpoint, checkpoint)

    def _gather_state_hashes(self) -> list[str]:
        import torch.distributed as dist

        digest = _state_sha256(self.model.state_dict())
        hashes: list[Any] = [None] * self.world
        dist.all_gather_object(hashes, digest)
        return [str(h) for h in hashes]

    def _summary(
        self, last_epoch: int, is_stopped_early: bool, total_s: float, hashes: list[str]
    ) -> DdpTrainSummary:
        config, history = self.config, self.history
        run = [r for r in history if r.epoch >= self.start_epoch]
        return DdpTrainSummary(
            world_size=self.world,
            threads_per_rank=config.threads_per_rank,
            device=str(self.device),
            backend=self.backend,
            global_batch=config.batch,
            per_rank_batch=config.per_rank_batch,
            accumulate=self.accumulate,
            model=config.model,
            data_yaml=str(config.data_yaml),
            epochs_planned=config.epochs,
            start_epoch=self.start_epoch,
            epochs_completed=last_epoch + 1,
            is_stopped_early=is_stopped_early,
            best_epoch=self.best_epoch,
            final=history[-1],
            best=max(history, key=lambda r: r.map50_95),
            epochs=history,
            mean_epoch_time_s=sum(r.epoch_time_s for r in run) / max(len(run), 1),
            mean_train_time_s=sum(r.train_time_s for r in run) / max(len(run), 1),
            total_time_s=total_s,
            state_sha256_per_rank=hashes,
            is_state_identical_across_ranks=len(set(hashes)) == 1,
            last_checkpoint=str(config.last_checkpoint),
            best_checkpoint=str(config.best_checkpoint),
            mlflow_run_id=self.mlflow_run_id,
        )


# --- helpers ---------------------------------------------------------------------------------------


def _build_model(source: str, data: dict[str, Any], cfg: Any) -> tuple[Any, bool]:
    """Build a detection model for ``data``'s classes from a config, or from a checkpoint's weights.

    A checkpoint's weights are transferred where shapes match (a new class count re-initializes
    the class outputs), as Ultralytics' trainer does. Returns the model and whether it is RT-DETR.
    """
    from ultralytics.nn.modules.head import RTDETRDecoder
    from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel, guess_model_task, load_checkpoint

    weights = None
    if source.endswith(".pt"):
        weights, _ = load_checkpoint(source)
        spec = copy.deepcopy(weights.yaml)
    else:
        spec = _load_spec(source)
    is_rtdetr = spec["head"][-1][-2] == RTDETRDecoder.__name__
    task = "detect" if is_rtdetr else guess_model_task(spec)  # its guess misses RT-DETR's head
    if task != "detect":
        raise InvalidInputError(f"--model: {source}: expected a detection model, got a {task!r} model")
    model_class = RTDETRDetectionModel if is_rtdetr else DetectionModel
    model = model_class(spec, nc=int(data["nc"]), ch=int(data.get("channels", 3)), verbose=False)
    if weights is not None:
        model.load(weights, verbose=False)
    model.nc, model.names, model.args = int(data["nc"]), data["names"], cfg
    for name, param in model.named_parameters():
        # Ultralytics freezes the DFL's fixed projection; everything else trains.
        param.requires_grad = ".dfl" not in name
    return model, is_rtdetr


def _load_spec(source: str) -> dict[str, Any]:
    from ultralytics.nn.tasks import yaml_model_load

    try:
        spec: dict[str, Any] = yaml_model_load(source)
    except FileNotFoundError as error:
        raise InvalidInputError(f"--model: {source}: no such model config") from error
    return spec


def _lr_factor(epoch: int, epochs: int, final_factor: float) -> float:
    """Ultralytics' linear schedule: 1 at epoch 0 down to ``final_factor`` (``lrf``) at the end."""
    return max(1 - epoch / epochs, 0) * (1.0 - final_factor) + final_factor


def _warmup_steps(warmup_epochs: float, epochs: int, batches: int) -> int:
    """Warmup batches, leaving at least the last epoch at the regular rate (as Ultralytics)."""
    return round(min(warmup_epochs, max(epochs - 1, 0)) * batches) if warmup_epochs > 0 else 0


def _loss_items(items: Any) -> dict[str, float]:
    if isinstance(items, dict):
        return {str(k): float(v) for k, v in items.items()}
    return {f"loss_{i}": float(v) for i, v in enumerate(items.flatten())}


def _event_metrics(record: EpochRecord) -> dict[str, float]:
    keys = ("map50_95", "map50", "precision", "recall", "train_time_s", "val_time_s", "epoch_time_s")
    return {key: float(getattr(record, key)) for key in keys}


def _state_sha256(state: dict[str, Any]) -> str:
    """SHA-256 over a state dict's names and raw tensor bytes (equal only if bit-identical)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def _write_atomically(path: Path, checkpoint: dict[str, Any]) -> None:
    """Serialize once and replace ``path``, so a crash never leaves half a checkpoint."""
    import torch

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".pt.partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


class _MlflowLogger:
    """Per-epoch metrics of rank 0 in one MLflow run (continued on resume)."""

    def __init__(self, mlflow: Any, run_id: str, out_dir: Path) -> None:
        self._mlflow = mlflow
        self.run_id = run_id
        self._out_dir = out_dir

    @classmethod
    def start(cls, config: DdpTrainConfig, run_id: str | None) -> _MlflowLogger:
        try:
            import mlflow
        except ImportError as error:
            raise BackendUnavailableError(
                "--tracking-uri needs MLflow: pip install 'cvops[registry]'"
            ) from error
        assert config.tracking_uri is not None
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_experiment(config.experiment)
        if run_id is not None:
            run = mlflow.start_run(run_id=run_id)
        else:
            run = mlflow.start_run(run_name=f"ddp-{config.out_dir.name}")
            params = {k: v for k, v in json.loads(config.to_json()).items() if k != "tracking_uri"}
            mlflow.log_params(params)
        return cls(mlflow, run.info.run_id, config.out_dir)

    def log_epoch(self, record: EpochRecord) -> None:
        metrics = {
            "map50_95": record.map50_95,
            "map50": record.map50,
            "precision": record.precision,
            "recall": record.recall,
            "learning_rate": record.learning_rate,
            "train_time_s": record.train_time_s,
            "val_time_s": record.val_time_s,
            **{f"train_{k}": v for k, v in record.loss.items()},
        }
        self._mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)}, step=record.epoch)

    def finish(self, summary: DdpTrainSummary) -> None:
        # Numbers only: an artifact would land in the experiment's artifact root, which for a
        # database URI defaults to ./mlruns in whatever folder the run started from.
        self._mlflow.log_metrics(
            {
                "final_map50_95": summary.final.map50_95,
                "final_map50": summary.final.map50,
                "best_map50_95": summary.best.map50_95,
                "mean_epoch_time_s": summary.mean_epoch_time_s,
            }
        )
        self._mlflow.set_tag("cvops.out_dir", str(self._out_dir))
        self._mlflow.end_run()


if __name__ == "__main__":
    main()
