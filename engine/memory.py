"""Domain values handed out by the engine (never ORM rows)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from engine.errors import EmptyText, NotUnicode, TextTooLong
from storage.models import MemoryRow
from storage.vector_types import Vector, VectorRecord, VectorRef


def is_personal(space_id: int) -> bool:
    """A private chat's id is its user's id (positive); groups have negative ids."""
    return space_id > 0


@dataclass(frozen=True)
class Memory:
    id: uuid.UUID
    space_id: int  # the chat it belongs to (a private chat: its user's personal space)
    author_id: int  # who saved it: a user, or the group itself for an anonymous admin
    topic_id: int | None  # the forum topic it was saved in
    text: str
    kind: str
    tags: tuple[str, ...]
    chat_id: int | None
    message_id: int | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the id: what users type to name a memory."""
        return self.id.hex[:8]

    @classmethod
    def from_row(cls, row: MemoryRow) -> Memory:
        return cls(
            id=row.id,
            space_id=row.space_id,
            author_id=row.author_id,
            topic_id=row.topic_id,
            text=row.text,
            kind=row.kind,
            tags=tuple(row.tags or ()),
            chat_id=row.chat_id,
            message_id=row.message_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True)
class SaveResult:
    memory: Memory
    created: bool  # False when the same chat message was saved before (idempotent replay)
    near_duplicate: Memory | None = None  # an older memory of the space nearly the same
    similarity: float | None = None  # cosine similarity to `near_duplicate`


@dataclass(frozen=True)
class NewMemory:
    """A validated request to remember `text` in space `space_id`."""

    space_id: int
    author_id: int
    text: str
    topic_id: int | None = None
    chat_id: int | None = None
    message_id: int | None = None
    expires_at: datetime | None = None
    kind: str = "note"
    tags: tuple[str, ...] = field(default_factory=tuple)
    created_at: datetime | None = None  # None: now (an import keeps the exported time)

    @property
    def source(self) -> tuple[int, int] | None:
        if self.chat_id is None or self.message_id is None:
            return None
        return (self.chat_id, self.message_id)


def normalise_text(text: str, *, limit: int) -> str:
    """Strip, drop NUL characters (PostgreSQL refuses them), refuse what is not Unicode (a
    lone surrogate, from a JSON escape) and enforce the length limit."""
    cleaned = text.replace("\x00", "").strip()
    if not cleaned:
        raise EmptyText()
    if not cleaned.isascii():
        try:
            cleaned.encode("utf-8")
        except UnicodeEncodeError:
            raise NotUnicode() from None
    if len(cleaned) > limit:
        raise TextTooLong(len(cleaned), limit)
    return cleaned


def text_digest(text: str) -> str:
    """A short fingerprint of the text a vector was made from (to spot stale vectors)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def vector_record(row: MemoryRow, embedding: Vector) -> VectorRecord:
    return VectorRecord(
        id=str(row.id),
        space_id=row.space_id,
        embedding=embedding,
        created_at=int(row.created_at.timestamp()),
        digest=text_digest(row.text),
        tags=tuple(row.tags or ()),
    )


def is_expired(row: MemoryRow, now: datetime) -> bool:
    """True once the memory's expiry has passed (it is no longer recalled or listed)."""
    return row.expires_at is not None and row.expires_at <= now


def vector_ref(row: MemoryRow) -> VectorRef:
    return VectorRef(str(row.id), row.space_id)
