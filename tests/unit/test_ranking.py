"""Recall ranking on its own: language-neutral terms, IDF weights, fusion by score, ties."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from engine.ranking import (
    KEYWORD_WEIGHT,
    Candidate,
    idf,
    keyword_score,
    query_terms,
    rank,
    selective,
    weights,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_terms_are_every_folded_word_in_any_language() -> None:
    assert query_terms("Where is the Café, where?") == ["where", "is", "the", "cafe"]
    assert query_terms("Где мой ПАСПОРТ?") == ["где", "мой", "паспорт"]
    assert query_terms("Schlüssel für die Wohnung") == ["schlussel", "fur", "die", "wohnung"]
    assert query_terms("room 4, locker 4471-QX") == ["room", "4", "locker", "4471", "qx"]
    assert query_terms("a b c") == []  # single letters carry nothing


def test_terms_respect_the_limit() -> None:
    assert query_terms("one two three four", limit=2) == ["one", "two"]


def test_a_rare_term_weighs_more_than_a_common_one() -> None:
    assert idf(1, 100) > idf(50, 100) > idf(99, 100) > 0
    assert weights({"okonkwo": 1, "the": 90, "where": 0}, 100).keys() == {"okonkwo", "the"}


def test_only_selective_terms_are_searched_unless_none_is() -> None:
    assert selective({"the": 80, "okonkwo": 1, "where": 0}, 100) == ["okonkwo"]
    assert selective({"the": 80, "is": 90}, 100) == ["the", "is"]
    assert selective({"паспорт": 1}, 1) == ["паспорт"]  # one memory: still found


def test_keyword_score_is_the_share_of_weight_covered_by_whole_words() -> None:
    term_weights = {"company": 1.0, "retreat": 3.0}
    assert keyword_score("Company retreat in Lisbon", term_weights) == pytest.approx(1.0)
    assert keyword_score("called the phone company", term_weights) == pytest.approx(0.25)
    assert keyword_score("thecompany", term_weights) == 0.0  # never inside a word
    assert keyword_score("retreats", term_weights) == pytest.approx(0.75)  # a word it begins
    assert keyword_score("anything", {}) == 0.0


def _candidate(similarity: float | None, keyword: float, age_s: int = 0) -> Candidate:
    return Candidate(uuid.uuid4(), similarity, keyword, T0 - timedelta(seconds=age_s))


def test_a_keyword_hit_under_the_floor_never_beats_a_semantic_hit() -> None:
    semantic = _candidate(0.30, 0.0)
    lone_keyword = _candidate(0.10, 1.0)  # score 0.30 too, but under the 0.25 floor
    assert rank([lone_keyword, semantic], floor=0.25) == [semantic, lone_keyword]


def test_fusion_is_by_score_and_keywords_break_near_ties() -> None:
    plain = _candidate(0.52, 0.0)
    with_code = _candidate(0.48, 1.0)
    far = _candidate(0.20, 0.0)  # under the floor, no keyword: not shown
    assert rank([plain, with_code, far], floor=0.25) == [with_code, plain]
    assert with_code.score == pytest.approx(0.48 + KEYWORD_WEIGHT)


def test_equally_good_hits_come_newest_first() -> None:
    old, new = _candidate(0.5, 0.5, age_s=3600), _candidate(0.5, 0.5)
    assert rank([old, new], floor=0.25) == [new, old]
