"""The one TTL grammar: `/save 7d buy milk` — a leading number with m, h, d or w."""

from __future__ import annotations

import re
from datetime import timedelta

TTL_TOKEN = re.compile(r"(\d{1,4})([mhdw])", re.IGNORECASE)
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_TTL = timedelta(days=3650)


class BadTtl(ValueError):
    pass


def split_ttl(text: str) -> tuple[timedelta | None, str]:
    """Split a leading TTL token off `text`: "7d buy milk" → (7 days, "buy milk")."""
    head, _, rest = text.strip().partition(" ")
    match = TTL_TOKEN.fullmatch(head)
    if match is None:
        return None, text.strip()
    amount, unit = int(match.group(1)), match.group(2).lower()
    if amount == 0:
        raise BadTtl("A TTL must be at least 1 (e.g. 30m, 2h, 7d, 4w).")
    ttl = timedelta(**{UNITS[unit]: amount})
    if ttl > MAX_TTL:
        raise BadTtl("A TTL can be at most 3650 days.")
    return ttl, rest.strip()


def describe(ttl: timedelta) -> str:
    seconds = int(ttl.total_seconds())
    for size, name in ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {name}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
