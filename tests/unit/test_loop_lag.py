"""The event-loop lag probe records how long other work held the loop, and the bench's
reading of its histogram turns bucket counts into quantiles."""

from __future__ import annotations

import asyncio
import time

from bench.observe import lag_quantile
from bot.loop_lag import probe_loop_lag
from engine.metrics import REGISTRY


def lag_total() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("memorybot_event_loop_lag_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("memorybot_event_loop_lag_seconds_sum") or 0.0
    return count, total


async def test_a_blocked_loop_shows_as_lag() -> None:
    before_count, before_sum = lag_total()
    probe = asyncio.create_task(probe_loop_lag(interval_s=0.01))
    await asyncio.sleep(0.03)  # the probe is asleep on its timer
    time.sleep(0.3)  # noqa: ASYNC251 - holding the loop is the point
    await asyncio.sleep(0.03)
    probe.cancel()
    count, total = lag_total()
    assert count > before_count
    assert total - before_sum >= 0.25  # the wake-up came at least ~0.29 s late


def test_lag_quantiles_come_from_cumulative_buckets() -> None:
    counters = {"lag_le_0.001": 50.0, "lag_le_0.01": 90.0, "lag_le_0.1": 99.0, "lag_samples": 100}
    assert lag_quantile(counters, 0.5) == 1.0
    assert lag_quantile(counters, 0.9) == 10.0
    assert lag_quantile(counters, 0.95) == 100.0
    assert lag_quantile(counters, 0.999) == float("inf")
    assert lag_quantile({"lag_samples": 0.0}, 0.5) is None
