"""Small tables: the audit log and the key-value facts (vector generation, last sweep)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditRow, KeyValueRow


class AuditRepository:
    """Append-only audit entries."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(
        self,
        *,
        action: str,
        actor_id: int | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
        success: bool = True,
    ) -> None:
        self._session.add(
            AuditRow(
                action=action,
                actor_id=actor_id,
                target=target,
                details=details or {},
                success=success,
            )
        )

    async def latest(self, limit: int) -> list[AuditRow]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        return list(await self._session.scalars(query))


class KeyValueRepository:
    """Durable small facts by key."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, key: str) -> str | None:
        row = await self._session.get(KeyValueRow, key)
        return None if row is None else row.value

    async def with_prefix(self, prefix: str) -> dict[str, str]:
        """Every key that starts with `prefix`, with its value."""
        rows = await self._session.scalars(
            select(KeyValueRow).where(KeyValueRow.key.startswith(prefix, autoescape=True))
        )
        return {row.key: row.value for row in rows}

    async def delete_keys(self, keys: Sequence[str]) -> int:
        """Delete these keys (those that exist); returns how many."""
        if not keys:
            return 0
        result = await self._session.execute(
            delete(KeyValueRow).where(KeyValueRow.key.in_(list(keys)))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with `prefix`; returns how many."""
        result = await self._session.execute(
            delete(KeyValueRow).where(KeyValueRow.key.startswith(prefix, autoescape=True))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def set(self, key: str, value: str) -> None:
        row = await self._session.get(KeyValueRow, key)
        if row is None:
            self._session.add(KeyValueRow(key=key, value=value))
        else:
            row.value = value
