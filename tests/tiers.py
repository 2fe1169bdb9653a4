"""How a test run is cut: `--db` (one database or both), slow tests first, and the clock of
the tests marked `dates` (`--test-now`, `--all-dates`). Loaded by tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import time_machine

# The instant every test marked `dates` starts at (the clock then ticks on): a plain Wednesday
# morning, unless `--test-now` names another instant or one of TEST_DATES.
DEFAULT_TEST_NOW = "2026-12-09T10:00:00+00:00"
# The instants `--all-dates` runs the `dates` tests at once more each (on SQLite).
TEST_DATES = {
    "monday-0700": "2026-12-07T07:00:00+00:00",  # 08:00 in Berlin: "every monday 9:00" is today
    "sunday-2330": "2026-12-13T23:30:00+00:00",  # already Monday in Berlin
    "new-years-eve": "2026-12-31T23:59:00+00:00",
    "leap-day": "2028-02-29T12:00:00+00:00",
    "berlin-spring": "2027-03-28T00:30:00+00:00",  # 01:30 CET; at 02:00 clocks jump to 03:00
    "berlin-autumn": "2026-10-25T00:30:00+00:00",  # 02:30 CEST; at 03:00 back to 02:00
    "new-york-spring": "2027-03-14T06:30:00+00:00",  # 01:30 EST; at 02:00 to 03:00
    "new-york-autumn": "2026-11-01T05:30:00+00:00",  # 01:30 EDT; the hour repeats
}
DATABASES = {"sqlite", "postgres"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-now",
        default=DEFAULT_TEST_NOW,
        help="the instant `dates` tests start at: ISO 8601 with an offset, or a TEST_DATES name",
    )
    parser.addoption(
        "--all-dates",
        action="store_true",
        help="also run every `dates` test at each instant of TEST_DATES (on SQLite)",
    )
    parser.addoption(
        "--db",
        choices=("both", *sorted(DATABASES)),
        default="both",
        help="run the tests parametrized over the database on this one only (default: both)",
    )


def instant(raw: str) -> datetime:
    """The aware instant `raw` names (a TEST_DATES name or ISO 8601 with an offset)."""
    when = datetime.fromisoformat(TEST_DATES.get(raw, raw))
    if when.tzinfo is None:
        raise pytest.UsageError(f"--test-now {raw}: give a UTC offset")
    return when


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With `--all-dates`, a `dates` test runs at `--test-now` and at every TEST_DATES."""
    if metafunc.config.getoption("--all-dates") and metafunc.definition.get_closest_marker(
        "dates"
    ):
        metafunc.fixturenames.append("test_instant")
        names = [str(metafunc.config.getoption("--test-now")), *TEST_DATES]
        metafunc.parametrize("test_instant", names, ids=["now", *TEST_DATES])


def _params(item: pytest.Item) -> dict[str, object]:
    return dict(getattr(getattr(item, "callspec", None), "params", {}))


def _deselected(item: pytest.Item, only: str) -> bool:
    params = _params(item)
    database = {str(value) for value in params.values()} & DATABASES
    if only != "both" and database - {only}:
        return True
    extra_date = params.get("test_instant", "now") in TEST_DATES
    return extra_date and "postgres" in database  # the extra dates run on SQLite


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--db` and `--all-dates` deselect what they leave out; slow tests go first, so that
    several workers (`-n`) never wait for one long test that was handed out last."""
    only = str(config.getoption("--db"))
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if _deselected(item, only) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("slow") is None)


def instant_of(item: pytest.Item) -> datetime:
    """The instant a `dates` test runs at: its `--all-dates` parameter, else `--test-now`."""
    raw = _params(item).get("test_instant") or item.config.getoption("--test-now")
    return instant(str(raw))


@pytest.fixture(autouse=True)
def clock_for_dates(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked `dates` owns its clock: it travels to its instant and time goes on from
    there (time-machine moves `time.time` and `datetime.now`, never `time.monotonic`, so
    asyncio's timers are untouched). A test that is not marked reads the real clock."""
    if request.node.get_closest_marker("dates") is None:
        yield
        return
    with time_machine.travel(instant_of(request.node), tick=True):
        yield
