"""Time phrases at the start or end of a /recall or /list query, in the user's time zone.

Understood (English, case-insensitive): `today`, `yesterday`, `this|last week` (Monday to
Sunday), `this|last month`, `this|last year`, `last|past N days|weeks|months`,
`in <month> [year]` (the latest such month not in the future), `in <year>`, `on <date>`,
`since <date>`, `after <date>`, `before <date>`, `between <date> and <date>` (both days
included), `from <date> to <date>`. A date is `2026-10-01`, `1 Oct [2026]` or
`Oct 1[,] [2026]`. A month name alone is never a filter ("march of the penguins").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.errors import InvalidInput

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_YEAR = r"(?:19|20)\d\d"
_MONTH = "(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DATE = (
    rf"(?:{_YEAR}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}\s+{_MONTH}(?:\s+{_YEAR})?"
    rf"|{_MONTH}\s+\d{{1,2}}(?:,?\s+{_YEAR})?)"
)
PHRASE = (
    r"(?P<phrase>today|yesterday|(?:this|last)\s+(?:week|month|year)"
    r"|(?:last|past)\s+\d{1,3}\s+(?:days?|weeks?|months?)"
    rf"|in\s+{_MONTH}(?:\s+{_YEAR})?|in\s+{_YEAR}"
    rf"|(?:on|since|after|before)\s+{_DATE}"
    rf"|between\s+{_DATE}\s+and\s+{_DATE}|from\s+{_DATE}\s+to\s+{_DATE})"
)
TRAILING = re.compile(rf"^(?:(?P<rest>.*?)[\s,;:]+)?{PHRASE}[\s.!?]*$", re.IGNORECASE | re.DOTALL)
LEADING = re.compile(rf"^\s*{PHRASE}(?:[\s,;:]+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
DATE_IN = re.compile(_DATE, re.IGNORECASE)
MAX_SPAN_DAYS = 3660


class BadTimeRange(InvalidInput):
    """A time phrase that names no real range (a wrong date, an empty span)."""


@dataclass(frozen=True)
class TimeRange:
    """[since, until) in UTC (aware), and how to say it to the user."""

    since: datetime | None
    until: datetime | None
    description: str


def parse_time(query: str, *, now: datetime, tz: ZoneInfo) -> tuple[TimeRange | None, str]:
    """Find one time phrase at the end (or else the start) of `query`.

    Args:
        query: the user's query, e.g. "passport last week".
        now: the current time (aware).
        tz: the user's time zone: days, weeks and months are theirs.

    Returns:
        The range (None when there is no phrase) and the rest of the query.

    Raises:
        BadTimeRange: the phrase names an impossible date or an empty range.
    """
    match = TRAILING.match(query) or LEADING.match(query)
    if match is None:
        return None, query.strip()
    phrase = " ".join(match.group("phrase").lower().split())
    return _resolve(phrase, now.astimezone(tz), tz), (match.group("rest") or "").strip()


def _resolve(phrase: str, now: datetime, tz: ZoneInfo) -> TimeRange:
    today = now.date()
    first, last = _days(phrase, today)
    if last < first:
        raise BadTimeRange(f"“{phrase}” ends before it starts.")
    if first > today and not phrase.startswith("before"):
        raise BadTimeRange(f"“{phrase}” is in the future: no memory is from then yet.")
    since = None if phrase.startswith("before") else _start(first, tz)
    until = None if phrase.startswith(("since", "after")) else _start(last + timedelta(1), tz)
    if phrase.startswith("before"):
        until = _start(first, tz)
    return TimeRange(since, until, _describe(phrase, first, last, today, tz))


def _days(phrase: str, today: date) -> tuple[date, date]:
    """The first and last local day the phrase covers."""
    words = phrase.split()
    if phrase in ("today", "yesterday"):
        day = today - timedelta(days=phrase == "yesterday")
        return day, day
    if words[0] in ("this", "last") and len(words) == 2:
        return _calendar(words[1], today, back=words[0] == "last")
    if words[0] in ("last", "past"):
        count, unit = int(words[1]), words[2].rstrip("s")
        if count < 1:
            raise BadTimeRange(f"“{phrase}” covers no time.")
        days = count * {"day": 1, "week": 7, "month": 30}[unit]
        return today - timedelta(days=min(days, MAX_SPAN_DAYS) - 1), today
    if words[0] == "in":
        return _in(words[1:], today)
    dates = [_date(m.group(0), today) for m in DATE_IN.finditer(phrase.split(" ", 1)[1])]
    if words[0] in ("between", "from"):
        return dates[0], dates[1]
    if words[0] == "after":
        return dates[0] + timedelta(1), dates[0] + timedelta(1)
    return dates[0], dates[0]  # on, since, before


def _calendar(unit: str, today: date, *, back: bool) -> tuple[date, date]:
    if unit == "week":
        start = today - timedelta(days=today.weekday() + 7 * back)
        return start, start + timedelta(days=6)
    if unit == "month":
        start = today.replace(day=1)
        if back:
            start = (start - timedelta(days=1)).replace(day=1)
        return start, _month_end(start)
    year = today.year - back
    return date(year, 1, 1), date(year, 12, 31)


def _in(words: list[str], today: date) -> tuple[date, date]:
    if words[0].isdigit():
        year = int(words[0])
        return date(year, 1, 1), date(year, 12, 31)
    month = MONTHS[words[0].rstrip(".")]
    if len(words) > 1:
        year = int(words[1])
    else:
        year = today.year if month <= today.month else today.year - 1
    start = date(year, month, 1)
    return start, _month_end(start)


def _month_end(start: date) -> date:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _date(text: str, today: date) -> date:
    """One date of a phrase; without a year, the latest such day not after today."""
    parts = re.split(r"[\s,.-]+", text.strip().lower())
    parts = [part for part in parts if part]
    try:
        if parts[0].isdigit() and len(parts[0]) == 4:
            return date(int(parts[0]), int(parts[1]), int(parts[2]))
        day, name = (parts[0], parts[1]) if parts[0].isdigit() else (parts[1], parts[0])
        month = MONTHS[name]
        if len(parts) > 2:
            return date(int(parts[2]), month, int(day))
        found = date(today.year, month, int(day))
        return found if found <= today else date(today.year - 1, month, int(day))
    except ValueError as error:
        raise BadTimeRange(f"“{text}” is not a date I know.") from error


def _start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight starting `day`, in UTC."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _describe(phrase: str, first: date, last: date, today: date, tz: ZoneInfo) -> str:
    def show(day: date) -> str:
        text = f"{day:%a} {day.day} {day:%b}"
        return text if day.year == today.year else f"{text} {day.year}"

    if phrase.startswith(("since", "after")):
        span = f"since {show(first)}"
    elif phrase.startswith("before"):
        span = f"before {show(first)}"
    elif phrase.startswith("on"):
        span = f"on {show(first)}"
    elif first == last:
        span = show(first)
    else:
        span = f"{show(first)} – {show(last)}"
    if phrase.startswith(("since", "after", "before", "on", "between", "from")):
        return f"{span} ({tz.key})"
    label = phrase
    if phrase.startswith("in ") and not phrase[3:].isdigit():
        label = f"in {first:%B}" + ("" if first.year == today.year else f" {first.year}")
    return f"{label} ({span}, {tz.key})"
