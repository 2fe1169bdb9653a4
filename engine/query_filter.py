"""A /list or /recall query split into what to search for and its filter (#tags, a time range)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.tags import split_tags
from engine.timefilter import parse_time
from engine.zones import zone
from storage.filters import NO_FILTER, MemoryFilter


@dataclass(frozen=True)
class FilteredQuery:
    """What is left to search for, the filter, and how to name the filter to the user."""

    text: str
    wanted: MemoryFilter = NO_FILTER
    tags: tuple[str, ...] = ()
    period: str | None = None  # e.g. "last week (Mon 16 Nov to Sun 22 Nov, UTC)"

    @property
    def described(self) -> str:
        """The filter in words: "#trip · last week (…)" (empty without a filter)."""
        return " · ".join([*(f"#{tag}" for tag in self.tags), *filter(None, [self.period])])


def split_query(query: str, *, now: datetime, timezone: str | None) -> FilteredQuery:
    """Take the #tags (anywhere) and one time phrase (at the start or end) out of `query`.

    Args:
        query: what the user typed after /list or /recall.
        now: the current time (aware).
        timezone: the user's IANA time zone (None: UTC).

    Raises:
        BadTimeRange: the time phrase names an impossible or future range.
    """
    tags, rest = split_tags(query)
    period, rest = parse_time(rest, now=now, tz=zone(timezone))
    if not any(char.isalnum() for char in rest):
        rest = ""  # only punctuation was left around the filter ("#work, last week")
    wanted = MemoryFilter(
        tags=tags,
        since=period.since if period else None,
        until=period.until if period else None,
    )
    return FilteredQuery(rest, wanted, tags, period.description if period else None)
