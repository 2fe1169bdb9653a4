"""The clock of the tests marked `dates` (tests/tiers.py): where it starts and that it ticks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import utcnow
from tests.tiers import TEST_DATES, instant, instant_of


@pytest.mark.dates
async def test_a_dates_test_starts_at_its_instant_and_the_clock_ticks(
    request: pytest.FixtureRequest,
) -> None:
    start = instant_of(request.node)
    first = utcnow()
    assert start <= first < start + timedelta(seconds=30)
    assert datetime.now(UTC) - first < timedelta(seconds=30)
    await asyncio.sleep(0.05)  # asyncio's timers run on the real monotonic clock
    assert utcnow() - first >= timedelta(seconds=0.04), "the clock is frozen"


def test_an_unmarked_test_reads_the_real_clock(tmp_path: Path) -> None:
    stamp = tmp_path / "now"
    stamp.write_text("")  # the kernel's clock, which no travel reaches
    real = datetime.fromtimestamp(stamp.stat().st_mtime, UTC)
    assert abs(utcnow() - real) < timedelta(seconds=5)


def test_every_named_instant_is_aware_utc() -> None:
    for name in TEST_DATES:
        assert instant(name).utcoffset() == timedelta(0), name
    with pytest.raises(pytest.UsageError):
        instant("2026-12-07T07:00:00")
