"""Time phrases in /list and /recall queries, with a fixed "now" and real time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.errors import InvalidInput
from engine.query_filter import split_query
from engine.timefilter import BadTimeRange, TimeRange, parse_time
from engine.zones import zone

pytestmark = pytest.mark.dates

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday
BERLIN = zone("Europe/Berlin")  # UTC+1 in November
UTC_ZONE = zone(None)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc,arg-type]


def parse(query: str, tz: str | None = None, now: datetime = NOW) -> tuple[TimeRange | None, str]:
    return parse_time(query, now=now, tz=zone(tz))


@pytest.mark.parametrize(
    ("query", "since", "until", "rest"),
    [
        ("today", utc(2026, 11, 23), utc(2026, 11, 24), ""),
        ("yesterday", utc(2026, 11, 22), utc(2026, 11, 23), ""),
        ("passport last week", utc(2026, 11, 16), utc(2026, 11, 23), "passport"),
        ("passport this week", utc(2026, 11, 23), utc(2026, 11, 30), "passport"),
        ("this month", utc(2026, 11, 1), utc(2026, 12, 1), ""),
        ("last month", utc(2026, 10, 1), utc(2026, 11, 1), ""),
        ("this year", utc(2026, 1, 1), utc(2027, 1, 1), ""),
        ("last year", utc(2025, 1, 1), utc(2026, 1, 1), ""),
        ("notes in March", utc(2026, 3, 1), utc(2026, 4, 1), "notes"),
        ("notes in december", utc(2025, 12, 1), utc(2026, 1, 1), "notes"),  # not the future one
        ("notes in November", utc(2026, 11, 1), utc(2026, 12, 1), "notes"),  # the current one
        ("in march 2025", utc(2025, 3, 1), utc(2025, 4, 1), ""),
        ("in Sept", utc(2026, 9, 1), utc(2026, 10, 1), ""),
        ("in 2025", utc(2025, 1, 1), utc(2026, 1, 1), ""),
        ("since 2026-10-01", utc(2026, 10, 1), None, ""),
        ("after 2026-10-01", utc(2026, 10, 2), None, ""),
        ("before 2026-10-01", None, utc(2026, 10, 1), ""),
        ("on 2026-10-01", utc(2026, 10, 1), utc(2026, 10, 2), ""),
        ("between 2026-10-01 and 2026-10-15", utc(2026, 10, 1), utc(2026, 10, 16), ""),
        ("from 1 Oct to Oct 15", utc(2026, 10, 1), utc(2026, 10, 16), ""),
        ("on Oct 3, 2025", utc(2025, 10, 3), utc(2025, 10, 4), ""),
        ("on 24 dec", utc(2025, 12, 24), utc(2025, 12, 25), ""),  # the latest past 24 Dec
        ("last 7 days", utc(2026, 11, 17), utc(2026, 11, 24), ""),
        ("past 2 weeks", utc(2026, 11, 10), utc(2026, 11, 24), ""),
        ("last 1 day", utc(2026, 11, 23), utc(2026, 11, 24), ""),
        ("what happened last week?", utc(2026, 11, 16), utc(2026, 11, 23), "what happened"),
        ("LAST WEEK passport", utc(2026, 11, 16), utc(2026, 11, 23), "passport"),
        ("in march we went to Rome", utc(2026, 3, 1), utc(2026, 4, 1), "we went to Rome"),
        ("yesterday, the dentist", utc(2026, 11, 22), utc(2026, 11, 23), "the dentist"),
    ],
)
def test_phrases_in_utc(
    query: str, since: datetime | None, until: datetime | None, rest: str
) -> None:
    found, left = parse(query)
    assert found is not None
    assert (found.since, found.until, left) == (since, until, rest)


@pytest.mark.parametrize(
    "query",
    [
        "march of the penguins",
        "the march",
        "may I ask",
        "today's plan",
        "weekly report",
        "week",
        "last weekend",
        "code in 1234",
        "since forever",
        "on monday",
        "pin 2026-10-01",
        "in the park",
        "movies like march of the penguins",
        "penguins in march of 2020",  # the phrase must end or start the query
    ],
)
def test_ordinary_words_are_left_alone(query: str) -> None:
    assert parse(query) == (None, query)


def test_days_are_the_users_days() -> None:
    found, _ = parse("today", "Europe/Berlin")
    assert found is not None
    assert (found.since, found.until) == (utc(2026, 11, 22, 23), utc(2026, 11, 23, 23))
    late = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # already Tuesday in Berlin
    found, _ = parse("yesterday", "Europe/Berlin", late)
    assert found is not None
    assert found.since == utc(2026, 11, 22, 23)
    tokyo, _ = parse("today", "Asia/Tokyo")
    assert tokyo is not None
    assert tokyo.since == utc(2026, 11, 22, 15)


def test_a_week_across_the_clock_change() -> None:
    wednesday = datetime(2026, 10, 28, 12, tzinfo=UTC)  # summer time ended on Sun 25 Oct
    found, _ = parse("last week", "Europe/Berlin", wednesday)
    assert found is not None
    assert found.since == utc(2026, 10, 18, 22)  # Mon 19 Oct 00:00 CEST
    assert found.until == utc(2026, 10, 25, 23)  # Mon 26 Oct 00:00 CET


def test_descriptions_say_the_range_and_zone() -> None:
    week, _ = parse("passport last week", "Europe/Berlin")
    assert week is not None
    assert week.description == "last week (Mon 16 Nov – Sun 22 Nov, Europe/Berlin)"
    since, _ = parse("since 2026-10-01")
    assert since is not None
    assert since.description == "since Thu 1 Oct (UTC)"
    march, _ = parse("in march 2025")
    assert march is not None
    assert march.description == "in March 2025 (Sat 1 Mar 2025 – Mon 31 Mar 2025, UTC)"
    day, _ = parse("on 2026-10-01")
    assert day is not None
    assert day.description == "on Thu 1 Oct (UTC)"


@pytest.mark.parametrize(
    "query",
    [
        "since 2027-01-01",  # future
        "in 2030",
        "on 2026-02-30",  # no such day
        "between 2026-10-15 and 2026-10-01",  # backwards
        "last 0 days",
    ],
)
def test_impossible_ranges_are_refused(query: str) -> None:
    with pytest.raises(BadTimeRange):
        parse(query)
    assert issubclass(BadTimeRange, InvalidInput)  # the bot words it for the user


def test_unknown_time_zone_falls_back_to_utc() -> None:
    assert zone("Mars/Olympus").key == "UTC"
    assert zone(None).key == "UTC"


def test_split_query_takes_tags_and_time() -> None:
    parsed = split_query("#Trip passport last week", now=NOW, timezone="Europe/Berlin")
    assert parsed.text == "passport"
    assert parsed.wanted.tags == ("trip",)
    assert parsed.wanted.since == utc(2026, 11, 15, 23)
    assert parsed.described == "#trip · last week (Mon 16 Nov – Sun 22 Nov, Europe/Berlin)"
    plain = split_query("march of the penguins", now=NOW, timezone=None)
    assert plain.wanted.empty
    assert plain.described == ""
    assert plain.text == "march of the penguins"
    only_tag = split_query("#work", now=NOW, timezone=None)
    assert only_tag.text == ""
    assert only_tag.wanted.tags == ("work",)
    assert only_tag.period is None


def test_punctuation_left_around_a_filter_is_no_query() -> None:
    parsed = split_query("#work, last week.", now=NOW, timezone=None)
    assert parsed.text == ""
    assert parsed.wanted.tags == ("work",)
    assert parsed.period is not None
