"""Recall ranking: query terms, their weight from the keyword index (IDF), and score fusion.

No word list decides what is searchable: every word of two characters or more (and every
number) is a term, in any language. How much a term counts comes from the index: a word that
few of the space's memories hold (a name, a code) weighs a lot, one that most hold ("the",
"und", "в") almost nothing (BM25's IDF). A memory's keyword score is the share of the query's
weight it covers, 0..1, so it adds to the cosine similarity on a fixed scale.

Fusion is by score: similarity + KEYWORD_WEIGHT * keyword score. Memories that clear the
semantic floor always rank above those that do not (a keyword hit alone never pushes out a
hit that is close in meaning), and among equally good hits the newer one comes first.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from storage.keyword_index import PREFIX_MIN, words
from storage.vector_types import Vector

MAX_TERMS = 12
KEYWORD_WEIGHT = 0.2
COMMON_SHARE = 0.5  # a term held by more than this share of the memories does not select
TIE_DIGITS = 3  # scores equal to this many decimals are ties: newer first


def query_terms(query: str, *, limit: int = MAX_TERMS) -> list[str]:
    """The distinct folded words of `query` that can be searched for, in query order.

    Single letters are dropped (single digits are kept: "room 4").
    """
    kept = [w for w in words(query) if len(w) >= 2 or w.isdigit()]
    return list(dict.fromkeys(kept))[:limit]


def idf(docs: int, total: int) -> float:
    """BM25's inverse document frequency of a term that `docs` of `total` memories hold."""
    total = max(total, docs)
    return math.log(1.0 + (total - docs + 0.5) / (docs + 0.5))


def weights(counts: Mapping[str, int], total: int) -> dict[str, float]:
    """The weight of every term that at least one memory holds (terms in no memory can't help)."""
    return {term: idf(docs, total) for term, docs in counts.items() if docs > 0}


def selective(counts: Mapping[str, int], total: int) -> list[str]:
    """The terms worth asking the index for: held by some memories, but not by most of them
    (unless no other term is)."""
    held = [term for term, docs in counts.items() if docs > 0]
    rare = [term for term in held if counts[term] <= COMMON_SHARE * total]
    return rare or held


def holds(term: str, tokens: set[str]) -> bool:
    """True if `tokens` (a memory's words) contain `term` as the index matches it."""
    if term in tokens:
        return True
    return len(term) >= PREFIX_MIN and any(token.startswith(term) for token in tokens)


def keyword_score(text: str, term_weights: Mapping[str, float]) -> float:
    """The share (0..1) of the query's term weight that `text` covers."""
    whole = sum(term_weights.values())
    if whole <= 0:
        return 0.0
    tokens = set(words(text))
    return sum(w for term, w in term_weights.items() if holds(term, tokens)) / whole


@dataclass(frozen=True)
class Candidate:
    """One memory that recall may return, with what each search said about it."""

    id: uuid.UUID
    similarity: float | None  # cosine similarity to the query; None when it has no vector
    keyword: float  # keyword score, 0..1
    created_at: datetime

    def cleared(self, floor: float) -> bool:
        """True if it is close enough in meaning on its own (similarity at least `floor`)."""
        return self.similarity is not None and self.similarity >= floor

    @property
    def score(self) -> float:
        """similarity + KEYWORD_WEIGHT * keyword score (a missing similarity counts as 0)."""
        return (self.similarity or 0.0) + KEYWORD_WEIGHT * self.keyword


def rank(candidates: Iterable[Candidate], *, floor: float) -> list[Candidate]:
    """The candidates worth showing, best first.

    Shown: every candidate that clears `floor`, then those under it that the keyword search
    found. Within each group by score; equal scores (to TIE_DIGITS) newer first.
    """
    shown = [c for c in candidates if c.cleared(floor) or c.keyword > 0]
    return sorted(
        shown,
        key=lambda c: (
            not c.cleared(floor),
            -round(c.score, TIE_DIGITS),
            -c.created_at.timestamp(),
            c.id,
        ),
    )


def cosine(a: Vector, b: Vector) -> float:
    """Cosine similarity of two vectors (0 if either is all zeros)."""
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm else 0.0
