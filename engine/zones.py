"""Time zones as users name them, and how a moment is placed in and shown for one."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from engine.errors import InvalidInput


class UnknownZone(InvalidInput):
    """A time zone name that is not in the IANA database."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"I don't know the time zone “{name[:64]}”. Use a name like Europe/Berlin, "
            "America/New_York or Asia/Tokyo, e.g. /timezone Europe/Berlin"
        )


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def zone_named(name: str) -> str:
    """The canonical IANA name for `name` (any case); raises UnknownZone."""
    found = _zones().get(name.strip().lower())
    if found is None:
        raise UnknownZone(name.strip())
    return found


def zone(name: str | None) -> ZoneInfo:
    """The zone a user chose (UTC when none, or when the stored name is unknown)."""
    try:
        return ZoneInfo(zone_named(name or "UTC"))
    except UnknownZone:
        return ZoneInfo("UTC")


def place(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in `tz` as UTC; a time skipped by DST moves on by the gap."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def show(moment: datetime, tz: ZoneInfo) -> str:
    """`Tue 24 Nov 2026, 09:00 Europe/Berlin`: what every reminder reply shows."""
    return f"{moment.astimezone(tz):%a %d %b %Y, %H:%M} {tz.key}"
