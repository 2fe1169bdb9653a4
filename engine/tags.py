"""#tags: the hashtags of a memory's text, as stored (case-folded, without '#').

A tag starts at a '#' that does not follow a word character, '#', '&' or '/' and is not part
of a URL; it runs over letters, digits, combining marks and '_' (Unicode), and has at least
one letter: `#работа`, `#café`, `#Trip2026` are tags; `C#`, `&#38;`, `#1`,
`https://x.com/#anchor` are not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_TAG_CHARS = 64  # longer "tags" are not tags (the column holds 64 characters)
MAX_TAGS = 50  # per memory; the rest are ignored
URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)
NOT_BEFORE = frozenset("#&/")
TAG_CATEGORIES = ("L", "N", "M")


def _tag_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in TAG_CATEGORIES or category == "Pc"


def normalise_tag(raw: str) -> str | None:
    """`raw` (with or without '#') as stored: NFKC, case-folded; None if it is no tag."""
    tag = unicodedata.normalize("NFC", unicodedata.normalize("NFKC", raw.lstrip("#")).casefold())
    if not tag or len(tag) > MAX_TAG_CHARS or not all(_tag_char(c) for c in tag):
        return None
    if not any(unicodedata.category(c).startswith("L") for c in tag):
        return None
    return tag


def find_tags(text: str) -> list[tuple[int, int, str]]:
    """Every hashtag in `text` as (start, end, tag): `text[start:end]` is '#' and its name."""
    urls = [match.span() for match in URL.finditer(text)]
    found: list[tuple[int, int, str]] = []
    for start, char in enumerate(text):
        if char != "#":
            continue
        before = text[start - 1] if start else ""
        if before and (_tag_char(before) or before in NOT_BEFORE):
            continue
        if any(a <= start < b for a, b in urls):
            continue
        end = start + 1
        while end < len(text) and _tag_char(text[end]):
            end += 1
        tag = normalise_tag(text[start + 1 : end]) if end > start + 1 else None
        if tag is not None:
            found.append((start, end, tag))
    return found


def extract_tags(text: str) -> tuple[str, ...]:
    """The distinct tags of `text`, in order of first appearance (at most MAX_TAGS)."""
    return merge_tags(tag for _, _, tag in find_tags(text))


def merge_tags(*groups: Iterable[str]) -> tuple[str, ...]:
    """The distinct valid tags of `groups` (normalised), in order (at most MAX_TAGS)."""
    merged: dict[str, None] = {}
    for group in groups:
        for raw in group:
            tag = normalise_tag(raw)
            if tag is not None:
                merged.setdefault(tag)
    return tuple(merged)[:MAX_TAGS]


def split_tags(text: str) -> tuple[tuple[str, ...], str]:
    """The tags of a query and the query without them (spaces squeezed)."""
    found = find_tags(text)
    rest, last = [], 0
    for start, end, _ in found:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    return merge_tags(tag for _, _, tag in found), " ".join("".join(rest).split())
