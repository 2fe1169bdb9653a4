"""Roles, the audit log and the admin's view of the system."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select

from engine.consistency import ConsistencyReport
from engine.errors import InvalidInput
from storage import repositories as repo
from storage.db import Database
from storage.models import AuditRow, BroadcastRow, DeadLetterRow, UserRow


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"
    VIEWER = "viewer"  # may recall and list, not save, edit or forget


class UnknownTarget(InvalidInput):
    def __init__(self, target: str) -> None:
        super().__init__(f"No user {target} has talked to me yet.")


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor_id: int | None
    action: str
    target: str | None
    success: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class SystemStats:
    users_active: int
    users_blocked: int
    memories: int
    consistency: ConsistencyReport
    dead_letters: int
    broadcasts_running: int


class AdminService:
    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def role_of(self, user_id: int) -> Role:
        async with self.db.reads() as session:
            role = await session.scalar(select(UserRow.role).where(UserRow.id == user_id))
        return Role(role) if role else Role.USER

    async def set_role(self, *, actor_id: int, target: str, role: Role) -> int:
        """Give `target` (a user id or @username) `role`; audited. Returns the user id."""
        async with self.db.writes() as session:
            query = select(UserRow)
            name = target.removeprefix("@")
            if name.lstrip("-").isdigit():
                query = query.where(UserRow.id == int(name))
            else:
                query = query.where(func.lower(UserRow.username) == name.lower())
            user = await session.scalar(query)
            if user is None:
                raise UnknownTarget(target)
            previous = user.role
            user.role = role.value
            await repo.add_audit(
                session,
                action="role_change",
                actor_id=actor_id,
                target=str(user.id),
                details={"from": previous, "to": role.value},
            )
            await session.commit()
            return user.id

    async def audit(
        self,
        *,
        action: str,
        actor_id: int | None,
        target: str | None = None,
        success: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self.db.writes() as session:
            await repo.add_audit(
                session,
                action=action,
                actor_id=actor_id,
                target=target,
                details=details,
                success=success,
            )
            await session.commit()

    async def latest_audit(self, *, limit: int = 10) -> list[AuditEntry]:
        async with self.db.reads() as session:
            rows = await session.scalars(
                select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
            )
            return [
                AuditEntry(r.at, r.actor_id, r.action, r.target, r.success, dict(r.details))
                for r in rows
            ]

    async def stats(self, consistency: ConsistencyReport) -> SystemStats:
        async with self.db.reads() as session:
            active = await session.scalar(select(func.count()).where(UserRow.is_active))
            blocked = await session.scalar(select(func.count()).where(~UserRow.is_active))
            letters = await session.scalar(
                select(func.count()).where(DeadLetterRow.replayed_at.is_(None))
            )
            running = await session.scalar(
                select(func.count()).where(BroadcastRow.status == "sending")
            )
        return SystemStats(
            int(active or 0),
            int(blocked or 0),
            consistency.sql_count,
            consistency,
            int(letters or 0),
            int(running or 0),
        )
