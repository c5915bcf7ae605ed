from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from cvops.errors import InvalidInputError
from cvops.serving.batching import BatchingConfig, DynamicBatcher


def _double(items: Sequence[int]) -> list[int]:
    time.sleep(0.01)
    return [2 * i for i in items]


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        _double, BatchingConfig(max_batch_size=4, max_latency_ms=50)
    )

    async def main() -> list[list[int]]:
        return list(await asyncio.gather(*(batcher.submit([i, 10 + i]) for i in range(4))))

    results = asyncio.run(main())
    assert results == [[0, 20], [2, 22], [4, 24], [6, 26]]
    assert max(batcher.batch_sizes) == 4  # two requests of two frames each
    assert sum(batcher.batch_sizes) == 8


def test_a_lone_request_under_no_load_does_not_wait_for_company() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        _double, BatchingConfig(max_batch_size=8, max_latency_ms=20)
    )

    async def main() -> float:
        start = time.perf_counter()
        assert await batcher.submit([1]) == [2]
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.5
    assert batcher.batch_sizes == [1]


def test_a_failing_batch_fails_each_waiting_request() -> None:
    def fail(items: Sequence[int]) -> list[int]:
        raise InvalidInputError("bad frame")

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        fail, BatchingConfig(max_batch_size=2, max_latency_ms=10)
    )

    async def main() -> list[object]:
        return list(await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True))

    assert all(isinstance(r, InvalidInputError) for r in asyncio.run(main()))


@pytest.mark.parametrize(
    "kwargs", [{"max_batch_size": 0}, {"max_latency_ms": -1.0}], ids=["size-0", "latency-neg"]
)
def test_config_rejects_impossible_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        BatchingConfig(**kwargs)  # type: ignore[arg-type]


def test_workers_run_batches_in_parallel_on_a_pool_least_loaded_first() -> None:
    from cvops.serving.pool import DetectorPool
    from tests.conftest import dets

    class SlowDetector:
        class_names = ("a", "b", "c")

        def detect(self, images: Sequence[object], settings: object = None) -> list[object]:
            time.sleep(0.2)
            return [dets([[0, 0, 1, 1]]) for _ in images]

    pool = DetectorPool([SlowDetector(), SlowDetector()])  # stands in for one instance per GPU
    batcher: DynamicBatcher[int, object] = DynamicBatcher(
        lambda items: pool.detect(list(items)), BatchingConfig(max_batch_size=1, max_latency_ms=0, workers=2)
    )

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(batcher.submit([1]), batcher.submit([2]))
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.35, "two workers on two instances should overlap"
    assert pool.calls == [1, 1]
    assert pool.busy == [0, 0]
