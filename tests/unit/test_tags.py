"""#tags from a memory's text: what counts as a tag and what does not."""

from __future__ import annotations

import pytest

from engine.tags import MAX_TAG_CHARS, MAX_TAGS, extract_tags, merge_tags, split_tags


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("plan #work", ("work",)),
        ("#Trip2026 passport", ("trip2026",)),
        ("#работа в понедельник", ("работа",)),
        ("a #café near the station", ("café",)),
        ("decomposed #cafe\u0301", ("café",)),  # NFC: the same tag as the composed form
        ("#Straße", ("strasse",)),  # case-folded, not just lower-cased
        ("#WORK #work #Work", ("work",)),
        ("#b then #a then #b", ("b", "a")),
        ("end of a sentence #done.", ("done",)),
        ("comma #one, #two; #three!", ("one", "two", "three")),
        ("(#inside)", ("inside",)),
        ("#snake_case", ("snake_case",)),
        ("#2026trip", ("2026trip",)),
        ("#日本 trip", ("日本",)),
        ("#ｗｏｒｋ", ("work",)),  # full-width letters fold to the same tag
    ],
)
def test_tags_are_found_case_folded_and_unique(text: str, tags: tuple[str, ...]) -> None:
    assert extract_tags(text) == tags


@pytest.mark.parametrize(
    "text",
    [
        "I write C# and F#",
        "see https://x.com/#anchor",
        "see http://example.org/page#section",
        "see www.example.org/#top",
        "x.com/#anchor",
        "&#38; is an ampersand",
        "issue #1 and #42",
        "## heading",
        "a lone # sign",
        "#_",
        "mail me at a#b",
    ],
)
def test_not_tags(text: str) -> None:
    assert extract_tags(text) == ()


def test_a_url_does_not_hide_a_tag_after_it() -> None:
    assert extract_tags("https://x.com/#anchor #real") == ("real",)


def test_a_tag_over_the_limit_is_not_a_tag() -> None:
    assert extract_tags("#" + "a" * MAX_TAG_CHARS) == ("a" * MAX_TAG_CHARS,)
    assert extract_tags("#" + "a" * (MAX_TAG_CHARS + 1)) == ()


def test_at_most_max_tags_are_kept() -> None:
    text = " ".join(f"#t{i}" for i in range(MAX_TAGS + 10))
    assert extract_tags(text) == tuple(f"t{i}" for i in range(MAX_TAGS))


def test_merge_normalises_and_drops_invalid() -> None:
    assert merge_tags(["#Work", "", "1", "work"], ["Trip"]) == ("work", "trip")


def test_split_takes_the_tags_out_of_a_query() -> None:
    assert split_tags("#trip passport") == (("trip",), "passport")
    assert split_tags("where is my  #Trip   passport #EU") == (
        ("trip", "eu"),
        "where is my passport",
    )
    assert split_tags("#work") == (("work",), "")
    assert split_tags("C# tutorial") == ((), "C# tutorial")
