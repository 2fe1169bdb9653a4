"""Odd or forged input is refused before it reaches SQL (issue 30): numbers typed by users and
callback data are ASCII digits within the columns' ranges, else no number at all."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.handlers.common import number_in
from bot.keyboards import ROW_ID_MAX, Button, parse_callback

REMINDER_BUTTONS = {
    Button.REMINDER_DONE,
    Button.SNOOZE_HOUR,
    Button.SNOOZE_TOMORROW,
    Button.CANCEL_REMINDER,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7),
        (" 42 ", 42),
        ("0", 0),
        (str(ROW_ID_MAX), ROW_ID_MAX),
        (str(ROW_ID_MAX + 1), None),
        ("²", None),  # str.isdigit says yes, int() says no
        ("٣", None),  # an Arabic-Indic digit: a digit, but no id anyone types
        ("-1", None),
        ("1e3", None),
        ("9" * 5000, None),
        ("", None),
    ],
)
def test_number_in(text: str, expected: int | None) -> None:
    assert number_in(text) == expected


@pytest.mark.parametrize(
    "data",
    [
        "rd:5:999999999999",  # 12 digits: PostgreSQL's integer overflowed (a dead letter)
        "rh:5:2147483648",
        "rc:5:99999999999",
        f"d:{'9' * 20}:deadbeef",  # an owner beyond BIGINT
        "rd:٣:1",
        "rd:5:٣",
    ],
)
def test_out_of_range_callbacks_are_malformed(data: str) -> None:
    assert parse_callback(data) is None


def test_the_largest_ids_still_parse() -> None:
    pressed = parse_callback(f"rd:{-(2**63) + 1}:{ROW_ID_MAX}")
    assert pressed is not None
    assert (pressed.button, pressed.owner, pressed.arg) == (
        Button.REMINDER_DONE,
        -(2**63) + 1,
        str(ROW_ID_MAX),
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_a_number_in_range_or_none(text: str) -> None:
    value = number_in(text)
    assert value is None or 0 <= value <= ROW_ID_MAX


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda code, owner, arg: f"{code}:{owner}:{arg}",
            st.sampled_from([b.value for b in Button]),
            st.integers(min_value=-(2**70), max_value=2**70),
            st.text(alphabet="0123456789abcdef", max_size=34),
        ),
    )
)
def test_any_callback_data_parses_in_range_or_not_at_all(data: str) -> None:
    pressed = parse_callback(data)
    if pressed is None:
        return
    assert abs(pressed.owner) < 2**63
    if pressed.button in REMINDER_BUTTONS:
        assert int(pressed.arg) <= ROW_ID_MAX
