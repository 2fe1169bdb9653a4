"""Which memories a list or recall is narrowed to: #tags and a time range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, select, true

from storage.models import MemoryRow, MemoryTagRow


@dataclass(frozen=True)
class MemoryFilter:
    """Memories carrying every tag in `tags`, created in [since, until) (UTC, aware)."""

    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return not self.tags and self.since is None and self.until is None


NO_FILTER = MemoryFilter()


def filter_clause(wanted: MemoryFilter) -> ColumnElement[bool]:
    """A WHERE clause over `MemoryRow` that keeps only the memories `wanted` describes."""
    clauses: list[ColumnElement[bool]] = []
    for tag in wanted.tags:
        clauses.append(
            exists(
                select(MemoryTagRow.memory_id).where(
                    MemoryTagRow.memory_id == MemoryRow.id,
                    MemoryTagRow.space_id == MemoryRow.space_id,
                    MemoryTagRow.tag == tag,
                )
            )
        )
    if wanted.since is not None:
        clauses.append(MemoryRow.created_at >= wanted.since)
    if wanted.until is not None:
        clauses.append(MemoryRow.created_at < wanted.until)
    return and_(true(), *clauses)
