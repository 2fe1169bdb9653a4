"""The same words in another case, spacing or punctuation make a near duplicate whatever the
model's precision puts their cosine at (engine/near_duplicates.py)."""

from __future__ import annotations

import pytest

from engine.near_duplicates import same_words


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("my passport is in the blue drawer", "My passport is in the blue drawer!"),
        ("buy oat milk on the way home", "  buy oat milk, on the way home!!"),
        ("Straße 5", "STRASSE 5"),  # casefold: ß is ss
        ("Купить молоко", "купить молоко."),
    ],
)
def test_the_same_words_are_the_same(a: str, b: str) -> None:
    assert same_words(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("buy oat milk on the way home", "buy oat milk on the way to work"),
        ("the code is 4711", "the code is 4712"),
        ("meet at 9", "meet at 9:30"),
        ("don't call", "dont call"),  # a word split differently is another text
    ],
)
def test_other_words_are_not(a: str, b: str) -> None:
    assert not same_words(a, b)
