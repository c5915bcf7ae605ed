"""Dynamic batching: requests arriving together share one detector call.

Requests queue; a single worker takes the first one and, when there is company (others already
queued, or the previous batch held several requests), waits at most ``max_latency_ms`` for more,
up to ``max_batch_size`` frames. A lone request under low load runs at once: waiting would only
add latency. Batches run in a worker thread, so the event loop keeps answering health checks.
With ``max_batch_size=1`` every request runs alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cvops.errors import InvalidInputError

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """How long to wait for company and how much to take.

    Attributes:
        max_batch_size: Most frames in one detector call.
        max_latency_ms: Longest a first request waits for others.
        workers: Batches run at once (one per model instance, e.g. per GPU).
    """

    max_batch_size: int = 8
    max_latency_ms: float = 5.0
    workers: int = 1

    def __post_init__(self) -> None:
        """Reject impossible settings."""
        if self.max_batch_size < 1 or self.max_latency_ms < 0 or self.workers < 1:
            raise InvalidInputError(
                f"expected max_batch_size >= 1, max_latency_ms >= 0 and workers >= 1, got "
                f"{self.max_batch_size}, {self.max_latency_ms}, {self.workers}"
            )


class DynamicBatcher(Generic[Item, Result]):
    """Merges concurrent ``submit`` calls into batches for ``run_batch``."""

    def __init__(self, run_batch: Callable[[Sequence[Item]], list[Result]], config: BatchingConfig) -> None:
        """Batch calls to ``run_batch`` (blocking; one result per item, in order)."""
        self._run_batch = run_batch
        self.config = config
        self._queue: asyncio.Queue[tuple[list[Item], asyncio.Future[list[Result]]]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.batch_sizes: list[int] = []  # recent batch sizes, for tests and metrics
        self._last_requests = 1

    async def submit(self, items: list[Item]) -> list[Result]:
        """Queue ``items`` (one request's frames) and wait for their results."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._work()) for _ in range(self.config.workers)]
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        await self._queue.put((items, future))
        return await future

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            pending = [await self._queue.get()]
            size = len(pending[0][0])
            deadline = time.monotonic() + self.config.max_latency_ms / 1e3
            if self._queue.empty() and self._last_requests == 1:
                deadline = 0.0  # no sign of load: run now
            while size < self.config.max_batch_size:
                if not self._queue.empty():
                    request = self._queue.get_nowait()
                    pending.append(request)
                    size += len(request[0])
                    continue
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                pending.append(request)
                size += len(request[0])
            self._last_requests = len(pending)
            await self._run(pending)

    async def _run(self, pending: list[tuple[list[Item], asyncio.Future[list[Result]]]]) -> None:
        items = [item for request, _ in pending for item in request]
        self.batch_sizes = [*self.batch_sizes[-999:], len(items)]
        try:
            results = await asyncio.to_thread(self._run_batch, items)
        except Exception as error:
            # Not swallowed: every request of the batch receives the error.
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for request, future in pending:
            if not future.done():
                future.set_result(results[start : start + len(request)])
            start += len(request)
