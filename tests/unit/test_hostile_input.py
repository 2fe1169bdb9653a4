"""Property tests (issue 30): whatever a user sends to /import or /remind, the answer is the
parsed result or a refusal (BadImport, BadSchedule) — never another exception, which would
end as "Sorry, something went wrong" and a dead letter. Bounded examples: quick tier."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.import_json import BadImport
from engine.importing import parse_import
from engine.schedule import HORIZON, BadSchedule, parse_reminder

LIMIT = 4000
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
WHEN = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda y, mo, d, h, mi, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:00{off}",
        st.integers(1, 9999),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from(["", "Z", "+01:00", "-05:00", "+14:00", "-12:00"]),
    ),
)
ITEMS = st.lists(
    st.one_of(
        st.text(max_size=50),
        st.fixed_dictionaries(
            {"text": st.text(max_size=50)},
            optional={
                "tags": st.lists(st.text(max_size=10), max_size=4) | JSON_VALUES,
                "created_at": WHEN | JSON_VALUES,
                "expires_at": WHEN,
            },
        ),
        JSON_VALUES,
    ),
    max_size=6,
)
ZONES = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
)


def parsed_or_refused(data: bytes, name: str) -> None:
    try:
        items = parse_import(data, file_name=name, limit=LIMIT)
    except BadImport as refusal:
        items, reason = [], str(refusal)
    else:
        reason = ""
    assert reason or items  # a refusal says why
    for item in items:
        item.text.encode("utf-8")  # what the insert does
        for when in (item.created_at, item.expires_at):
            assert when is None or when.tzinfo is not None


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from(["x.json", "x.txt", "x.md", "x.pdf"]))
def test_any_bytes(data: bytes, name: str) -> None:
    parsed_or_refused(data, name)


@SETTINGS
@given(ITEMS, st.booleans())
def test_any_export_shaped_json(items: list[object], wrapped: bool) -> None:
    document: object = {"memories": items} if wrapped else items
    parsed_or_refused(json.dumps(document).encode(), "export.json")


@SETTINGS
@given(st.text(max_size=20), st.integers(1, 60_000), st.sampled_from(["[", '{"a":']))
def test_lone_surrogates_deep_nesting_and_long_numbers(text: str, depth: int, opener: str) -> None:
    parsed_or_refused(json.dumps([text + "\ud800"]).encode(), "x.json")
    parsed_or_refused((opener * depth).encode(), "x.json")
    parsed_or_refused(b"[" + b"9" * depth + b"]", "x.json")


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda when, rest: f"{when} {rest}",
            WHEN.map(lambda w: w.replace("T", " ")),
            st.text(max_size=20),
        ),
        st.builds(
            lambda rest, when: f"{rest} {when}",
            st.text(max_size=20),
            WHEN.map(lambda w: w[:16].replace("T", " ")),
        ),
        st.builds(
            lambda n, unit: f"in {n} {unit} do it",
            st.integers(0, 10**12),
            st.sampled_from(["s", "min", "h", "days", "weeks"]),
        ),
    ),
    ZONES,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_any_reminder_text(payload: str, zone_name: str, naive_now: datetime) -> None:
    now = naive_now.replace(tzinfo=UTC)
    try:
        schedule = parse_reminder(payload, now=now, tz=ZoneInfo(zone_name))
    except BadSchedule as refusal:
        schedule, reason = None, str(refusal)
    else:
        reason = ""
    if schedule is None:
        assert "/remind" in reason  # a refusal shows examples
        return
    assert now < schedule.due_at <= now + HORIZON + timedelta(days=8)
    assert schedule.text
