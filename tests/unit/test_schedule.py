"""Reading `/remind <when> <text>`: the documented forms, time zones and DST, and refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.reminder_outbox import Reminder
from engine.reminders import snooze_time
from engine.schedule import BadSchedule, Recurrence, parse_reminder
from engine.zones import UnknownZone, show, zone, zone_named

pytestmark = pytest.mark.dates

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 23, 13, 5, tzinfo=UTC)  # Monday 14:05 in Berlin


def local(text: str, *, now: datetime = NOW, tz: ZoneInfo = BERLIN) -> tuple[str, str]:
    parsed = parse_reminder(text, now=now, tz=tz)
    return f"{parsed.due_at.astimezone(tz):%Y-%m-%d %H:%M}", parsed.text


@pytest.mark.parametrize(
    ("text", "due", "what"),
    [
        ("in 2h take the pizza out", "2026-11-23 16:05", "take the pizza out"),
        ("in 30 min tea", "2026-11-23 14:35", "tea"),
        ("in 1h 30m stretch", "2026-11-23 15:35", "stretch"),
        ("in 2h30m stretch", "2026-11-23 16:35", "stretch"),
        ("in an hour call back", "2026-11-23 15:05", "call back"),
        ("in 2 days pay rent", "2026-11-25 14:05", "pay rent"),
        ("in 1 week, and 2 days x", "2026-12-02 14:05", "x"),
        ("tomorrow 9:00 call the dentist", "2026-11-24 09:00", "call the dentist"),
        ("tomorrow at 9 call the dentist", "2026-11-24 09:00", "call the dentist"),
        ("tomorrow 9pm bins", "2026-11-24 21:00", "bins"),
        ("fri 18:30 book a table", "2026-11-27 18:30", "book a table"),
        ("friday 18:30 book a table", "2026-11-27 18:30", "book a table"),
        ("2026-12-24 10:00 buy a tree", "2026-12-24 10:00", "buy a tree"),
        ("december 24 10am gifts", "2026-12-24 10:00", "gifts"),
        ("next friday team lunch", "2026-11-27 09:00", "team lunch"),
        ("tonight take the bins out", "2026-11-23 20:00", "take the bins out"),
        ("18:00 leave the office", "2026-11-23 18:00", "leave the office"),
        ("13:00 lunch", "2026-11-24 13:00", "lunch"),  # passed today: tomorrow
        ("call mom tomorrow 9:00", "2026-11-24 09:00", "call mom"),  # time at the end
        ("tomorrow 9:00 call mom at 5", "2026-11-24 09:00", "call mom at 5"),
    ],
)
def test_one_off_forms(text: str, due: str, what: str) -> None:
    assert local(text) == (due, what)


@pytest.mark.parametrize(
    ("text", "encoded", "first"),
    [
        ("every monday 9:00 weekly report", "weekly:0@09:00", "2026-11-30 09:00"),
        ("every mon at 9 weekly report", "weekly:0@09:00", "2026-11-30 09:00"),
        ("every Friday 5pm beer", "weekly:4@17:00", "2026-11-27 17:00"),
        ("every day 8:00 vitamins", "daily@08:00", "2026-11-24 08:00"),
        ("every day 15:00 vitamins", "daily@15:00", "2026-11-23 15:00"),
        ("daily 7:30 run", "daily@07:30", "2026-11-24 07:30"),
        ("every sunday water plants", "weekly:6@09:00", "2026-11-29 09:00"),
    ],
)
def test_recurring_forms(text: str, encoded: str, first: str) -> None:
    parsed = parse_reminder(text, now=NOW, tz=BERLIN)
    assert parsed.recurrence is not None
    assert parsed.recurrence.encode() == encoded
    assert Recurrence.decode(encoded) == parsed.recurrence
    assert f"{parsed.due_at.astimezone(BERLIN):%Y-%m-%d %H:%M}" == first


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "when and what"),
        ("buy milk", "couldn't read a time"),
        ("a b c", "couldn't read a time"),  # dateparser alone would read "a" as a date
        ("5 apples", "couldn't read a time"),
        ("in 2 make tea", "couldn't read a time"),
        ("in 2h", "What should I remind you of"),
        ("every day", "What should I remind you of"),
        ("every blursday 9:00 x", "couldn't read a time"),
        ("today 9:00 standup", "already passed"),
        ("2025-01-01 10:00 old news", "already passed"),
        ("in 0 min now", "already passed"),
        ("in 9999 days far", "couldn't read a time"),
    ],
)
def test_refusals_are_friendly_and_show_examples(text: str, problem: str) -> None:
    with pytest.raises(BadSchedule) as caught:
        parse_reminder(text, now=NOW, tz=BERLIN)
    assert problem in str(caught.value)
    assert "/remind tomorrow 9:00" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "zone_name", "problem"),
    [  # each raised OverflowError (a dead letter) before the horizon check (issue 30)
        ("9999-12-31 23:00 far future", "America/New_York", "more than five years ahead"),
        ("0001-01-01 00:30 long ago", "Europe/Berlin", "(0001-01-01 00:30) has already passed"),
        ("9999-12-31 23:59 end of time", "Pacific/Kiritimati", "more than five years ahead"),
        ("far future 9999-12-31 23:00", "America/New_York", "more than five years ahead"),
    ],
)
def test_dates_at_the_edges_of_the_calendar_are_refused(
    text: str, zone_name: str, problem: str
) -> None:
    with pytest.raises(BadSchedule) as caught:
        parse_reminder(text, now=NOW, tz=ZoneInfo(zone_name))
    assert problem in str(caught.value)


def test_the_same_words_mean_the_users_local_time() -> None:
    tokyo = parse_reminder("tomorrow 9:00 x", now=NOW, tz=ZoneInfo("Asia/Tokyo"))
    utc = parse_reminder("tomorrow 9:00 x", now=NOW, tz=ZoneInfo("UTC"))
    assert tokyo.due_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert utc.due_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_wall_times_across_the_spring_dst_change() -> None:
    before = datetime(2026, 3, 28, 11, 0, tzinfo=UTC)  # Saturday 12:00 CET
    assert local("tomorrow 12:00 x", now=before)[0] == "2026-03-29 12:00"
    due = parse_reminder("tomorrow 12:00 x", now=before, tz=BERLIN).due_at
    assert due == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)  # CEST: UTC+2
    # "in 24h" is an exact duration: 24 real hours, 13:00 on the wall after the change.
    assert local("in 24h x", now=before) == ("2026-03-29 13:00", "x")
    # 02:30 does not exist that night: it moves on by the gap.
    assert local("2026-03-29 02:30 x", now=before)[0] == "2026-03-29 03:30"


def test_recurring_time_stays_on_the_wall_clock_over_dst() -> None:
    weekly = Recurrence(0, time(9, 0))
    dues = []
    after = datetime(2026, 10, 20, tzinfo=UTC)
    for _ in range(3):
        after = weekly.next_after(after, BERLIN)
        dues.append(after)
    assert [d.astimezone(BERLIN).strftime("%a %d %H:%M") for d in dues] == [
        "Mon 26 09:00",
        "Mon 02 09:00",
        "Mon 09 09:00",
    ]
    assert dues[0].hour == 8  # 26 Oct is after the change (25 Oct): CET, UTC+1
    assert dues[1] - dues[0] == timedelta(days=7)


def test_next_occurrence_is_strictly_after() -> None:
    daily = Recurrence(None, time(8, 0))
    exactly = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 Berlin
    assert daily.next_after(exactly, BERLIN) == exactly + timedelta(days=1)
    assert daily.next_after(exactly - timedelta(seconds=1), BERLIN) == exactly
    assert daily.describe() == "every day at 08:00"
    assert Recurrence(2, time(7, 5)).describe() == "every Wednesday at 07:05"


def test_zone_names() -> None:
    assert zone_named("europe/berlin") == "Europe/Berlin"
    assert zone_named(" UTC ") == "UTC"
    with pytest.raises(UnknownZone) as caught:
        zone_named("Mars/Base")
    assert "Mars/Base" in str(caught.value)
    assert "/timezone Europe/Berlin" in str(caught.value)
    assert zone(None).key == "UTC"
    assert zone("Nowhere/Land").key == "UTC"


def test_show_names_the_zone() -> None:
    assert show(NOW, BERLIN) == "Mon 23 Nov 2026, 14:05 Europe/Berlin"


def test_snooze_times() -> None:
    assert snooze_time("hour", now=NOW, timezone="UTC") == NOW + timedelta(hours=1)
    tomorrow = snooze_time("tomorrow", now=NOW, timezone="Asia/Tokyo")
    assert show(tomorrow, ZoneInfo("Asia/Tokyo")) == "Tue 24 Nov 2026, 09:00 Asia/Tokyo"


def test_late_means_over_a_minute() -> None:
    reminder = Reminder(1, uuid.uuid4(), 1, None, 1, "x", NOW, None, "UTC", "sending", 0, 0)
    assert not reminder.late(NOW + timedelta(seconds=60))
    assert reminder.late(NOW + timedelta(seconds=61))
