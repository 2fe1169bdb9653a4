"""storage.batching.BatchQueue and storage.embedder.Embedder, with fakes instead of the model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from storage.batching import BatchQueue
from storage.embedder import Embedder
from tests.conftest import fake_encode


class Boom(RuntimeError):
    pass


class Doubler:
    """A run_batch that records each batch and can fail per item or as a whole."""

    def __init__(self, *, fail_items: frozenset[int] = frozenset(), fail_batches: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.fail_items = fail_items
        self.fail_batches = fail_batches

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(0.001)
        if self.fail_batches:
            self.fail_batches -= 1
            raise Boom("whole batch")
        return [Boom(f"item {i}") if i in self.fail_items else i * 2 for i in items]


@pytest.mark.parametrize("wait_s", [0.0, 0.001])
async def test_concurrent_submits_are_coalesced_and_each_caller_gets_its_result(
    wait_s: float,
) -> None:
    run = Doubler()
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=wait_s)
    results = await asyncio.gather(*(queue.submit(i) for i in range(50)))
    assert results == [i * 2 for i in range(50)]
    assert len(run.batches) <= 3
    assert queue.batches == len(run.batches)
    assert sorted(i for batch in run.batches for i in batch) == list(range(50))


async def test_items_arriving_during_a_batch_go_into_the_next_one() -> None:
    run = Doubler()
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0)
    first = asyncio.ensure_future(queue.submit(0))
    await asyncio.sleep(0)  # the drainer takes [0] and starts running it
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(queue.submit(i)) for i in range(1, 11)]
    assert await first == 0
    assert await asyncio.gather(*later) == [i * 2 for i in range(1, 11)]
    assert run.batches == [[0], list(range(1, 11))]


async def test_max_batch_is_respected() -> None:
    run = Doubler()
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=3, wait_s=0.0)
    results = await asyncio.gather(*(queue.submit(i) for i in range(10)))
    assert results == [i * 2 for i in range(10)]
    assert [len(b) for b in run.batches] == [3, 3, 3, 1]
    assert [i for batch in run.batches for i in batch] == list(range(10))


async def test_a_per_item_exception_goes_to_that_caller_only() -> None:
    run = Doubler(fail_items=frozenset({3}))
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0)
    results = await asyncio.gather(*(queue.submit(i) for i in range(6)), return_exceptions=True)
    assert len(run.batches) == 1
    assert isinstance(results[3], Boom)
    assert str(results[3]) == "item 3"
    assert [r for i, r in enumerate(results) if i != 3] == [0, 2, 4, 8, 10]


async def test_a_failing_batch_fails_every_caller_and_later_submits_still_work() -> None:
    run = Doubler(fail_batches=1)
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0)
    results = await asyncio.gather(*(queue.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, Boom) and str(r) == "whole batch" for r in results)
    assert await queue.submit(21) == 42
    assert await asyncio.gather(*(queue.submit(i) for i in range(3))) == [0, 2, 4]


async def test_a_cancelled_caller_is_left_out_of_the_batch() -> None:
    run = Doubler()
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.01)
    gone = asyncio.ensure_future(queue.submit(1))
    kept = asyncio.ensure_future(queue.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 4
    assert run.batches == [[2]]


async def test_a_run_batch_returning_too_few_results_fails_the_callers() -> None:
    async def short(items: list[int]) -> list[int | BaseException]:
        results: list[int | BaseException] = [*items[:-1]]
        return results

    queue: BatchQueue[int, int] = BatchQueue(short, max_batch=64, wait_s=0.0)
    pending = asyncio.gather(*(queue.submit(i) for i in range(3)), return_exceptions=True)
    results = await asyncio.wait_for(pending, timeout=1.0)
    assert any(isinstance(r, BaseException) for r in results)


class Poisoned:
    """A run_batch that fails as a whole whenever a batch holds a poison item (or always)."""

    def __init__(self, poison: frozenset[int], *, down: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.poison = poison
        self.down = down

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.down or self.poison & set(items):
            raise Boom("store fault")
        return [i * 2 for i in items]


async def submit_together(queue: BatchQueue[int, int], n: int) -> list[int | BaseException]:
    """Submit 0..n-1 so that they all land in one batch."""
    return await asyncio.gather(*(queue.submit(i) for i in range(n)), return_exceptions=True)


@pytest.mark.parametrize("poison", [0, 7, 12, 19])
async def test_one_poison_item_fails_alone_and_its_neighbours_go_through(poison: int) -> None:
    run = Poisoned(frozenset({poison}))
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0, split=True)
    results = await submit_together(queue, 20)
    assert isinstance(results[poison], Boom)
    assert [r for i, r in enumerate(results) if i != poison] == [
        i * 2 for i in range(20) if i != poison
    ]
    assert len(run.batches) <= 1 + 2 * 5  # one halving per level, two attempts each
    assert [poison] in run.batches
    assert queue.batches == len(run.batches)


async def test_a_store_that_is_down_costs_three_attempts_not_one_per_item() -> None:
    run = Poisoned(frozenset(), down=True)
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0, split=True)
    results = await submit_together(queue, 20)
    assert all(isinstance(r, Boom) for r in results)
    assert [len(b) for b in run.batches] == [20, 10, 10]


async def test_a_blip_that_passes_is_not_seen_by_any_caller() -> None:
    run = Doubler(fail_batches=1)
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0, split=True)
    assert await submit_together(queue, 6) == [0, 2, 4, 6, 8, 10]
    assert run.batches == [[0, 1, 2, 3, 4, 5], [0, 1, 2], [3, 4, 5]]


async def test_without_split_a_poison_item_fails_its_whole_batch() -> None:
    run = Poisoned(frozenset({3}))
    queue: BatchQueue[int, int] = BatchQueue(run, max_batch=64, wait_s=0.0)
    results = await submit_together(queue, 6)
    assert all(isinstance(r, Boom) for r in results)
    assert len(run.batches) == 1


class CountingEncode:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self.fail:
            raise Boom("model broke")
        return fake_encode(texts)


@pytest.fixture
async def embedder_for() -> AsyncIterator[Callable[[CountingEncode], Embedder]]:
    made: list[Embedder] = []

    def build(encode: CountingEncode) -> Embedder:
        made.append(Embedder(encode, max_batch=64, wait_ms=1.0))
        return made[-1]

    yield build
    for embedder in made:
        await embedder.aclose()


async def test_concurrent_embeds_share_encode_calls(
    embedder_for: Callable[[CountingEncode], Embedder],
) -> None:
    encode = CountingEncode()
    embedder = embedder_for(encode)
    texts = [f"memory number {i} about topic {i % 7}" for i in range(40)]
    vectors = await asyncio.gather(*(embedder.embed(t) for t in texts))
    assert len(encode.calls) < 40
    assert embedder.batches == len(encode.calls)
    for text, vector in zip(texts, vectors, strict=True):
        assert vector.dtype == np.float32
        assert vector.shape == (384,)
        np.testing.assert_array_equal(vector, fake_encode([text])[0])


async def test_embed_many_returns_one_row_per_text_in_one_call(
    embedder_for: Callable[[CountingEncode], Embedder],
) -> None:
    encode = CountingEncode()
    embedder = embedder_for(encode)
    texts = ["apples", "pears", "apples and pears"]
    rows = await embedder.embed_many(texts)
    assert len(rows) == 3
    assert encode.calls == [texts]
    for text, row in zip(texts, rows, strict=True):
        np.testing.assert_array_equal(row, fake_encode([text])[0])
    assert await embedder.embed_many([]) == []
    assert len(encode.calls) == 1


async def test_an_encode_error_reaches_every_caller(
    embedder_for: Callable[[CountingEncode], Embedder],
) -> None:
    encode = CountingEncode(fail=True)
    embedder = embedder_for(encode)
    results = await asyncio.gather(
        *(embedder.embed(f"t{i}") for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, Boom) for r in results)
    with pytest.raises(Boom):
        await embedder.embed_many(["x"])
    encode.fail = False
    np.testing.assert_array_equal(await embedder.embed("back"), fake_encode(["back"])[0])
