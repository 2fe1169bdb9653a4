"""wait_set: a cancellation that arrives as the event is set still stops the waiting loop."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from engine.waiting import settle, wait_set


async def _forever(event: asyncio.Event, wait: object) -> None:
    while True:
        if wait == "wait_set":
            await wait_set(event, 10)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=10)
        event.clear()


async def test_cancel_as_event_is_set_stops_the_loop() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_forever(event, "wait_set"))
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()  # the same loop turn as the wake-up: Python 3.11's wait_for loses this one
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done
    assert task.cancelled()


async def test_wait_set_reports_set_and_timeout() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0.01) is True


async def test_settle_does_not_raise_the_tasks_error_but_keeps_ours() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    failing = asyncio.ensure_future(fail())
    await settle(failing)
    assert isinstance(failing.exception(), ValueError)

    blocker = asyncio.ensure_future(asyncio.Event().wait())
    waiter = asyncio.create_task(settle(blocker))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    blocker.cancel()
