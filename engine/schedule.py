"""When a reminder is due: `/remind <when> <text>` read in the user's time zone (pure).

Forms: `in 2h`, `in 30 min`, `in 1h 30m` (exact durations, read here); `every day 8:00`,
`every monday 9:00`, `daily 7:30` (recurring, read here); anything else (`tomorrow 9:00`,
`fri 18:30`, `2026-12-24 10:00`, `next friday`) goes to dateparser: the longest run of up to
MAX_WHEN_WORDS leading words (else trailing words) that reads as a time wins; the rest is the
text. dateparser gives a wall-clock time, which is placed in the zone here (DST-correct).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dateparser  # type: ignore[import-untyped]

from engine.errors import InvalidInput
from engine.zones import place, show

MAX_WHEN_WORDS = 6
DEFAULT_TIME = time(9, 0)  # a day named without a time ("next friday")
HORIZON = timedelta(days=5 * 366)
EXAMPLES = (
    "/remind in 2h take the pizza out\n/remind tomorrow 9:00 call the dentist\n"
    "/remind fri 18:30 book the table\n/remind 2026-12-24 10:00 buy a tree\n"
    "/remind every monday 9:00 weekly report\n/remind every day 8:00 vitamins"
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
UNITS |= {"h": 3600, "hr": 3600, "hour": 3600, "d": 86400, "day": 86400, "w": 604800}
UNITS |= {"week": 604800}
_UNIT = "|".join(u + ("s?" if len(u) > 1 else "") for u in sorted(UNITS, key=len, reverse=True))
_AMOUNT = re.compile(rf"(\d+|an?)\s*({_UNIT})(?![a-z])")
_CLOCK = re.compile(r"(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$", re.IGNORECASE)
_CUE = re.compile(
    r"\d{1,2}:\d{2}|\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}|\d\s*[ap]\.?m\b|\b(?:today|"
    r"tomorrow|tonight|noon|midnight|morning|evening|afternoon|next|week|month|year|"
    r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day)?|jan|feb|mar|apr|may|jun|jul|"
    r"aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|september|"
    r"october|november|december)\b",
    re.IGNORECASE,
)
_BARE_HOUR = re.compile(r"\bat\s+(\d{1,2})\b(?!\s*[:.]|\s*[ap]\.?m)", re.IGNORECASE)
_HAS_TIME = re.compile(r"\d:\d|\d\s*[ap]\.?m\b|\b(?:noon|midnight|tonight|now)\b", re.I)


class BadSchedule(InvalidInput):
    """The time of a reminder could not be read, or is not in the future."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}\nFor example:\n{EXAMPLES}")


@dataclass(frozen=True)
class Recurrence:
    """Every day (weekday None) or every given weekday (0 = Monday) at a local time."""

    weekday: int | None
    at: time

    def encode(self) -> str:
        head = "daily" if self.weekday is None else f"weekly:{self.weekday}"
        return f"{head}@{self.at:%H:%M}"

    @classmethod
    def decode(cls, raw: str) -> Recurrence:
        head, _, clock = raw.partition("@")
        weekday = None if head == "daily" else int(head.removeprefix("weekly:"))
        return cls(weekday, time.fromisoformat(clock))

    def describe(self) -> str:
        day = "day" if self.weekday is None else WEEKDAYS[self.weekday].capitalize()
        return f"every {day} at {self.at:%H:%M}"

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first occurrence strictly after `after` (UTC), at the local time in `tz`."""
        start: date = after.astimezone(tz).date()
        for offset in range(9):
            day = start + timedelta(days=offset)
            if self.weekday is None or day.weekday() == self.weekday:
                due = place(datetime.combine(day, self.at), tz)
                if due > after:
                    return due
        raise AssertionError("unreachable: a week always has that day")


@dataclass(frozen=True)
class Schedule:
    """A parsed /remind: when (UTC), what, and how it repeats."""

    due_at: datetime
    text: str
    recurrence: Recurrence | None = None


def parse_reminder(payload: str, *, now: datetime, tz: ZoneInfo) -> Schedule:
    """Read `<when> <text>`; raises BadSchedule when there is no time, no text, or a past time.

    Args:
        payload: what follows /remind.
        now: the current time (aware).
        tz: the user's zone: wall-clock times are read in it.
    """
    words = payload.split()
    if not words:
        raise BadSchedule("Tell me when and what.")
    head = words[0].lower()
    if head in ("every", "daily"):
        found = _recurring(words, now)
    else:
        found = _relative(payload, now) or _free_form(words, now, tz)
    if found is None:
        raise BadSchedule("I couldn't read a time at the start of that.")
    due, rest, recurrence = found
    text = " ".join(rest).strip()
    if not text:
        raise BadSchedule("What should I remind you of? Put the text after the time.")
    if recurrence is not None:
        due = recurrence.next_after(now, tz)
    if due <= now:
        raise BadSchedule(f"That time ({show(due, tz)}) has already passed.")
    if due - now > HORIZON:
        raise BadSchedule("That is more than five years ahead.")
    return Schedule(due.astimezone(UTC), text, recurrence)


Found = tuple[datetime, list[str], Recurrence | None]


def _recurring(words: list[str], now: datetime) -> Found | None:
    rest = words[1:] if words[0].lower() == "daily" else words[2:]
    if words[0].lower() == "daily" or (len(words) > 1 and words[1].lower() in ("day", "days")):
        weekday = None
    else:
        name = words[1].lower().rstrip("s") if len(words) > 1 else ""
        matches = [i for i, day in enumerate(WEEKDAYS) if len(name) >= 3 and day.startswith(name)]
        if len(matches) != 1:
            return None
        weekday = matches[0]
    at, used = DEFAULT_TIME, 0
    for size in (2, 1):  # "at 9:00" or "9:00"
        clock = _clock(" ".join(rest[:size])) if len(rest) > size else None
        if clock is not None:
            at, used = clock, size
            break
    return now, rest[used:], Recurrence(weekday, at)


def _clock(text: str) -> time | None:
    match = _CLOCK.fullmatch(text.strip())
    if match is None or (match.group(2) is None and match.group(3) is None and "at" not in text):
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").lower()
    if suffix and not 1 <= hour <= 12:
        return None
    hour = hour % 12 + (12 if suffix == "pm" else 0) if suffix else hour
    return time(hour, minute) if hour < 24 and minute < 60 else None


def _relative(payload: str, now: datetime) -> Found | None:
    """`in 2h`, `in 1 hour 30 min`, `in an hour`: an exact duration from now."""
    match = re.match(r"in\s+", payload, re.IGNORECASE)
    if match is None:
        return None
    seconds, position = 0, match.end()
    while amount := _AMOUNT.match(payload.lower(), position):
        count = 1 if amount.group(1) in ("a", "an") else int(amount.group(1))
        seconds += count * UNITS[amount.group(2).rstrip("s") or "s"]
        position = amount.end()
        position += len(payload[position:]) - len(payload[position:].lstrip(" ,"))
        if payload[position:].lower().startswith("and "):
            position += 4
    if position == match.end() or seconds > HORIZON.total_seconds():
        return None
    return now + timedelta(seconds=seconds), payload[position:].split(), None


def _free_form(words: list[str], now: datetime, tz: ZoneInfo) -> Found | None:
    """The longest leading (else trailing) run of words that dateparser reads as a time."""
    base = now.astimezone(tz).replace(tzinfo=None)
    longest = min(MAX_WHEN_WORDS, len(words) - 1)
    for size in range(longest, 0, -1):
        wall = _wall(" ".join(words[:size]), base)
        if wall is not None:
            return _placed(wall, base, tz), words[size:], None
    for size in range(longest, 0, -1):
        wall = _wall(" ".join(words[-size:]), base)
        if wall is not None:
            return _placed(wall, base, tz), words[:-size], None
    return None


def _placed(wall: datetime, base: datetime, tz: ZoneInfo) -> datetime:
    """`wall` in `tz` as UTC; a wall time at the edge of the calendar (year 1 or 9999) has no
    UTC instant, and is refused as in the past or too far ahead."""
    try:
        return place(wall, tz)
    except OverflowError:
        if wall > base:
            raise BadSchedule("That is more than five years ahead.") from None
        moment = wall.isoformat(sep=" ", timespec="minutes")
        raise BadSchedule(f"That time ({moment}) has already passed.") from None


def _wall(when: str, base: datetime) -> datetime | None:
    if not _CUE.search(when):
        return None  # "a", "5": dateparser reads them as dates; nobody means that
    when = _BARE_HOUR.sub(r"\1:00", when)
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": base}
    parsed = dateparser.parse(when, languages=["en"], settings=settings)
    if not isinstance(parsed, datetime):
        return None
    wall = parsed.replace(tzinfo=None)
    if not _HAS_TIME.search(when) and wall.time() == time(0) and "week" not in when.lower():
        wall = datetime.combine(wall.date(), DEFAULT_TIME)
    return wall
