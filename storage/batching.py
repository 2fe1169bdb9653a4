"""Coalesce concurrent requests into batches: one runs while the next one fills up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")
RunBatch = Callable[[list[In]], Awaitable[Sequence[Out | BaseException]]]


class BatchQueue(Generic[In, Out]):
    """Callers `submit` one item and await its own result; a single drain task runs batches.

    When idle, an item starts at once (after `wait_s`, to let simultaneous callers join);
    under load, everything that arrived while the previous batch ran goes into the next one.
    """

    def __init__(self, run_batch: RunBatch[In, Out], *, max_batch: int, wait_s: float) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._wait_s = wait_s
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
            self.batches += 1
            try:
                results = list(await self._run_batch([item for item, _ in live]))
            except BaseException as error:  # every caller of the batch gets the error
                results = [error] * len(live)
                if isinstance(error, asyncio.CancelledError):
                    for _, fut in live:
                        fut.cancel()
                    raise
            if len(results) != len(live):
                mismatch = RuntimeError(f"batch gave {len(results)} results for {len(live)} items")
                results = [mismatch] * len(live)
            for (_, fut), result in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    async def aclose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
            await asyncio.wait({self._drainer})  # never swallows our own cancellation
