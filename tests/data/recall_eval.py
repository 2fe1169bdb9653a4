"""Scoring recall on a labelled set: load the notes, ask the questions, recall@1/@5 and MRR.

A set is notes by key (`Notes`) and questions naming the key of the note that answers them.
`load` saves the notes into one space through the engine's bulk save path; `ranks` asks every
question in one recall mode and gives the 1-based rank of the expected note among the top
`K` hits (None when it is not among them); `score` sums the ranks up.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.app import MemoryEngine
from engine.recall import Mode, recall

K = 5  # hits asked for per question: recall@5 is the widest figure
_MODES: dict[str, Mode] = {"semantic": "semantic", "keyword": "keyword", "hybrid": "hybrid"}
MODES: tuple[str, ...] = tuple(_MODES)  # the recall modes compared, meaning alone first

Notes = Mapping[str, str]  # note text by key
Question = tuple[str, str]  # (question, key of the note that answers it)


@dataclass(frozen=True)
class Scores:
    """How well one mode answered one set of questions."""

    n: int  # questions asked
    at1: float  # share answered by the first hit (recall@1)
    at5: float  # share answered among the first five hits (recall@5)
    mrr: float  # mean reciprocal rank (a question not answered counts 0)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "recall@1": self.at1, "recall@5": self.at5, "mrr": self.mrr}


async def load(engine: MemoryEngine, space_id: int, notes: Notes) -> dict[str, uuid.UUID]:
    """Register user `space_id` and save `notes` into that personal space, in order.

    Returns:
        The id of each saved memory, by the note's key.
    """
    await engine.users.register(user_id=space_id)
    keys = list(notes)
    saved = await engine.writes.save_many(space_id=space_id, texts=[notes[k] for k in keys])
    return {key: result.memory.id for key, result in zip(keys, saved, strict=True)}


async def ranks(
    engine: MemoryEngine,
    space_id: int,
    questions: Sequence[Question],
    ids: Mapping[str, uuid.UUID],
    mode: str,
) -> list[int | None]:
    """For each question, the 1-based rank of its note among the top `K` hits of `mode`
    recall (one of MODES) in space `space_id` (None when the note is not among them)."""
    how = _MODES[mode]
    found: list[int | None] = []
    for question, key in questions:
        hits = await recall(engine.stores, space_id=space_id, query=question, k=K, mode=how)
        hit_ids = [hit.memory.id for hit in hits]
        wanted = ids[key]
        found.append(hit_ids.index(wanted) + 1 if wanted in hit_ids else None)
    return found


def score(found: Sequence[int | None]) -> Scores:
    """recall@1, recall@5 and MRR of the ranks `ranks` gave (0 for no questions)."""
    n = len(found)
    if n == 0:
        return Scores(0, 0.0, 0.0, 0.0)
    at1 = sum(1 for r in found if r == 1) / n
    at5 = sum(1 for r in found if r is not None and r <= K) / n
    mrr = sum(1 / r for r in found if r is not None) / n
    return Scores(n, at1, at5, mrr)
