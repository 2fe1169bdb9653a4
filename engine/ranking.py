"""Recall ranking: query keywords and reciprocal-rank fusion of the result lists."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

RRF_K = 60
STOPWORDS = frozenset(
    (
        "the",
        "and",
        "for",
        "are",
        "was",
        "were",
        "you",
        "your",
        "with",
        "that",
        "this",
        "from",
        "have",
        "has",
        "had",
        "not",
        "but",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "how",
        "did",
        "does",
        "can",
        "could",
        "would",
        "should",
        "about",
        "into",
        "there",
        "their",
        "them",
        "they",
        "our",
        "out",
        "all",
        "any",
        "some",
        "my",
        "me",
        "mine",
        "its",
        "it's",
        "i'm",
    )
)


def keywords(query: str, *, limit: int = 6) -> list[str]:
    """Distinct words of three letters or more that are not stopwords, in query order."""
    words = [w for w in re.findall(r"\w+", query.lower()) if len(w) >= 3 and w not in STOPWORDS]
    return list(dict.fromkeys(words))[:limit]


def fuse(rankings: Sequence[Sequence[uuid.UUID]]) -> dict[uuid.UUID, float]:
    """Reciprocal-rank fusion: sum of 1 / (60 + rank) over the lists an id appears in."""
    scores: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, memory_id in enumerate(ranking, start=1):
            scores[memory_id] = scores.get(memory_id, 0.0) + 1.0 / (RRF_K + rank)
    return scores
