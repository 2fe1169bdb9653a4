"""Pure text helpers: normalise_text and text_digest (ranking: tests/unit/test_ranking.py)."""

from __future__ import annotations

import pytest

from engine.errors import EmptyText, InvalidInput, TextTooLong
from engine.memory import normalise_text, text_digest


def test_normalise_strips_surrounding_whitespace() -> None:
    assert normalise_text("  buy milk \n\t", limit=100) == "buy milk"


def test_normalise_removes_nul_characters() -> None:
    assert normalise_text("a\x00b\x00", limit=100) == "ab"


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00", " \x00 "])
def test_normalise_refuses_empty_text(text: str) -> None:
    with pytest.raises(EmptyText) as caught:
        normalise_text(text, limit=100)
    assert isinstance(caught.value, InvalidInput)
    assert "empty" in str(caught.value)


def test_normalise_refuses_text_over_the_limit_with_length_and_limit() -> None:
    with pytest.raises(TextTooLong) as caught:
        normalise_text("x" * 1234, limit=1000)
    assert caught.value.length == 1234
    assert caught.value.limit == 1000
    assert "1,234" in str(caught.value)
    assert "1,000" in str(caught.value)


def test_normalise_accepts_text_exactly_at_the_limit() -> None:
    assert normalise_text("y" * 10, limit=10) == "y" * 10


def test_normalise_measures_the_limit_after_stripping() -> None:
    assert normalise_text("   " + "z" * 10 + "   ", limit=10) == "z" * 10


def test_digest_is_stable_and_short() -> None:
    assert text_digest("hello") == text_digest("hello")
    assert len(text_digest("hello")) == 16
    assert all(c in "0123456789abcdef" for c in text_digest("hello"))


def test_digest_differs_for_different_text() -> None:
    assert text_digest("hello") != text_digest("hello!")
    assert text_digest("a") != text_digest("A")
