"""Coalesce concurrent requests into batches: one runs while the next one fills up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")
RunBatch = Callable[[list[In]], Awaitable[Sequence[Out | BaseException]]]
log = logging.getLogger("memorybot.batching")


class BatchQueue(Generic[In, Out]):
    """Callers `submit` one item and await its own result; a single drain task runs batches.

    When idle, an item starts at once (after `wait_s`, to let simultaneous callers join);
    under load, everything that arrived while the previous batch ran goes into the next one.

    With `split`, a batch that fails as a whole is tried again in halves, and a half that
    fails while its sibling succeeds is halved again: one item that always fails (a poison
    message) fails alone and the rest go through. When both halves fail the cause is not one
    item (the store is down): they get their error and nothing is tried further, so an outage
    costs three attempts per batch, not one per item.
    """

    def __init__(
        self, run_batch: RunBatch[In, Out], *, max_batch: int, wait_s: float, split: bool = False
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._wait_s = wait_s
        self._split = split
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            if self._wait_s and len(self._pending) < self._max_batch:
                await asyncio.sleep(self._wait_s)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            items = [item for item, _ in live]
            results: list[Out | BaseException]
            try:
                results = await self._isolate(items, await self._attempt(items))
            except BaseException as error:  # every caller of the batch gets the error
                results = [error] * len(live)
                if isinstance(error, asyncio.CancelledError):
                    for _, fut in live:
                        fut.cancel()
                    raise
            for (_, fut), result in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    async def _attempt(self, items: list[In]) -> list[Out | BaseException] | Exception:
        """One run of `items`: a result per item, or the exception that failed them all."""
        self.batches += 1
        try:
            results = list(await self._run_batch(items))
        except Exception as error:
            return error
        if len(results) != len(items):
            return RuntimeError(f"batch gave {len(results)} results for {len(items)} items")
        return results

    async def _isolate(
        self, items: list[In], tried: list[Out | BaseException] | Exception
    ) -> list[Out | BaseException]:
        """Results for `items`, which failed together with `tried` (see the class note)."""
        if not isinstance(tried, Exception):
            return tried
        if not self._split or len(items) < 2:
            return [tried] * len(items)
        mid = len(items) // 2
        halves = (items[:mid], items[mid:])
        log.warning("batch of %d failed (%s); trying its halves", len(items), type(tried).__name__)
        outcomes = [await self._attempt(half) for half in halves]
        if all(isinstance(outcome, Exception) for outcome in outcomes):
            return [tried] * len(items)
        results: list[Out | BaseException] = []
        for half, outcome in zip(halves, outcomes, strict=True):
            results.extend(await self._isolate(half, outcome))
        return results

    async def aclose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
            await asyncio.wait({self._drainer})  # never swallows our own cancellation
