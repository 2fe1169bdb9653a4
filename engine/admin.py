"""Roles, the audit log and the admin's view of the system."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.broadcast_types import SENDING
from engine.consistency import ConsistencyReport
from engine.errors import InvalidInput
from engine.stores import Stores


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"
    VIEWER = "viewer"  # may recall and list, not save, edit or forget


class UnknownTarget(InvalidInput):
    def __init__(self, target: str) -> None:
        super().__init__(f"No user {target} has talked to me yet.")


class AmbiguousTarget(InvalidInput):
    def __init__(self, target: str) -> None:
        super().__init__(
            f"More than one user was called {target}; use their numeric id (see /audit)."
        )


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
    """Roles, audit entries and system statistics."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self.demoted_at_sync: tuple[int, ...] = ()  # the last sync_settings_admins' demotions

    async def role_of(self, user_id: int) -> Role:
        """The user's role (USER for someone unknown)."""
        async with self._stores.reading() as repos:
            role = await repos.users.role_of(user_id)
        return Role(role) if role else Role.USER

    async def set_role(self, *, actor_id: int, target: str, role: Role) -> int:
        """Give `target` (a user id or @username) `role`; audited. Returns the user id.

        A role given here outlives ADMIN_USER_IDS: `sync_settings_admins` leaves it alone.

        Raises:
            UnknownTarget: nobody by that id or name.
            AmbiguousTarget: several users carry that @username (one of them renamed since).
        """
        async with self._stores.unit_of_work("set_role") as uow:
            found = await uow.users.find(target)
            if not found:
                raise UnknownTarget(target)
            if len(found) > 1:
                raise AmbiguousTarget(target)
            [user] = found
            previous = user.role
            user.role = role.value
            user.role_granted_by = actor_id
            uow.audit.add(
                action="role_change",
                actor_id=actor_id,
                target=str(user.id),
                details={"from": previous, "to": role.value},
            )
        return user.id

    async def sync_settings_admins(self, admin_ids: frozenset[int]) -> list[int]:
        """Make ADMIN_USER_IDS the truth at start: demote admins it no longer names (audited).

        A role set with /role wins over the settings (it is the newer decision) and is left
        alone; ids in the settings are promoted here or when they first talk to the bot.

        Returns:
            The ids that lost the admin role (also kept in `demoted_at_sync`, for the bot's
            command menus).
        """
        async with self._stores.unit_of_work("sync_admins") as uow:
            for user_id in sorted(admin_ids):
                user = await uow.users.get(user_id)
                if user is not None and user.role_granted_by is None:
                    user.role = Role.ADMIN.value
            demoted = []
            for user in await uow.users.admins_from_settings():
                if user.id not in admin_ids:
                    user.role = Role.USER.value
                    demoted.append(user.id)
                    uow.audit.add(
                        action="role_change",
                        target=str(user.id),
                        details={"from": "admin", "to": "user", "why": "not in ADMIN_USER_IDS"},
                    )
        self.demoted_at_sync = tuple(demoted)
        return demoted

    async def admin_ids(self) -> list[int]:
        """Every user whose role is admin (from ADMIN_USER_IDS or /role), by id."""
        async with self._stores.reading() as repos:
            return sorted(await repos.users.admin_ids())

    async def audit(
        self,
        *,
        action: str,
        actor_id: int | None,
        target: str | None = None,
        success: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit entry."""
        async with self._stores.unit_of_work("audit") as uow:
            uow.audit.add(
                action=action, actor_id=actor_id, target=target, details=details, success=success
            )

    async def latest_audit(self, *, limit: int = 10) -> list[AuditEntry]:
        """The newest audit entries, newest first."""
        async with self._stores.reading() as repos:
            rows = await repos.audit.latest(limit)
            return [
                AuditEntry(r.at, r.actor_id, r.action, r.target, r.success, dict(r.details))
                for r in rows
            ]

    async def stats(self, consistency: ConsistencyReport) -> SystemStats:
        """Users, memories, dead letters and running broadcasts, beside `consistency`."""
        async with self._stores.reading() as repos:
            active = await repos.users.count(active=True)
            blocked = await repos.users.count(active=False)
            letters = await repos.dead_letters.count_pending()
            running = await repos.broadcasts.count(status=SENDING)
        return SystemStats(active, blocked, consistency.sql_count, consistency, letters, running)
