"""Pure text helpers: normalise_text, text_digest, keywords and reciprocal-rank fusion."""

from __future__ import annotations

import uuid

import pytest

from engine.errors import EmptyText, InvalidInput, TextTooLong
from engine.memory import normalise_text, text_digest
from engine.ranking import RRF_K, fuse, keywords


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


def test_keywords_drop_stopwords_and_short_words() -> None:
    assert keywords("What is the name of my dog?") == ["name", "dog"]


def test_keywords_are_lowercased_deduplicated_and_in_query_order() -> None:
    assert keywords("Paris trip, paris hotel, TRIP budget") == ["paris", "trip", "hotel", "budget"]


def test_keywords_respect_the_limit() -> None:
    query = "alpha bravo charlie delta echo foxtrot golf hotel"
    assert keywords(query) == ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    assert keywords(query, limit=2) == ["alpha", "bravo"]


def test_keywords_of_only_stopwords_is_empty() -> None:
    assert keywords("the and for you it") == []


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


def test_fuse_scores_by_reciprocal_rank() -> None:
    a, b = ids(2)
    scores = fuse([[a, b]])
    assert scores[a] == pytest.approx(1 / (RRF_K + 1))
    assert scores[b] == pytest.approx(1 / (RRF_K + 2))


def test_fuse_ranks_an_id_in_both_lists_above_ids_in_one() -> None:
    a, b, c, d = ids(4)
    scores = fuse([[a, b, c], [d, c]])  # c is last in one list and second in the other
    ranked = sorted(scores, key=lambda i: scores[i], reverse=True)
    assert ranked[0] == c
    assert scores[c] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 2))
    assert set(ranked) == {a, b, c, d}


def test_fuse_ties_equal_ranks_in_different_lists() -> None:
    a, b = ids(2)
    scores = fuse([[a], [b]])
    assert scores[a] == pytest.approx(scores[b])


def test_fuse_of_empty_rankings_is_empty() -> None:
    assert fuse([]) == {}
    assert fuse([[], []]) == {}
