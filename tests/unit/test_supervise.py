"""Supervision: a long-running task that raises is started again; configuration errors and
cancellation end it; a task that returns is done."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.supervise import ConfigurationError, supervised


class Flaky:
    """Fails `failures` times, then returns (or waits for ever with `then_block`)."""

    def __init__(self, failures: int, *, then_block: bool = False) -> None:
        self.failures = failures
        self.then_block = then_block
        self.runs = 0
        self.running = asyncio.Event()

    async def __call__(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"crash {self.runs}")
        self.running.set()
        if self.then_block:
            await asyncio.Event().wait()


async def test_a_failing_task_is_restarted_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="memorybot.supervisor")
    task = Flaky(3)
    await asyncio.wait_for(supervised("flaky", task, first_backoff_s=0.001), timeout=10)
    assert task.runs == 4
    failures = [r for r in caplog.records if "task=flaky failed" in r.getMessage()]
    assert len(failures) == 3


async def test_the_backoff_doubles_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("bot.supervise.asyncio.sleep", sleep)
    await supervised("flaky", Flaky(5), first_backoff_s=1.0, max_backoff_s=5.0)
    assert pauses == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_a_configuration_error_ends_supervision() -> None:
    runs = 0

    async def misconfigured() -> None:
        nonlocal runs
        runs += 1
        raise ConfigurationError("TELEGRAM_BOT_TOKEN is missing")

    with pytest.raises(ConfigurationError):
        await asyncio.wait_for(supervised("bad", misconfigured, first_backoff_s=0.001), 10)
    assert runs == 1


async def test_cancelling_ends_a_restarted_task() -> None:
    task = Flaky(1, then_block=True)
    running = asyncio.create_task(supervised("flaky", task, first_backoff_s=0.001))
    await asyncio.wait_for(task.running.wait(), timeout=10)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert task.runs == 2
