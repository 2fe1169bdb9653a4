"""Users: registration and lookup."""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.errors import AlreadyExists, UnknownUser
from engine.stores import Stores
from engine.uow import InSameUnit, UnitOfWork
from engine.zones import zone_named
from storage.models import UserRow


@dataclass(frozen=True)
class User:
    """A user row as read: who they are, their role and their quota counters."""

    id: int
    username: str | None
    first_name: str | None
    role: str
    is_active: bool
    daily_ops_limit: int | None = None
    max_memories: int | None = None
    ops_today: int = 0
    ops_day: str | None = None
    timezone: str | None = None  # IANA name; None: never chosen (UTC is used)

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            row.id,
            row.username,
            row.first_name,
            row.role,
            row.is_active,
            row.daily_ops_limit,
            row.max_memories,
            row.ops_today or 0,
            row.ops_day,
            row.timezone,
        )


@dataclass(frozen=True)
class Profile:
    """Who a user is as Telegram shows them, and whether they wrote in private."""

    user_id: int
    username: str | None
    first_name: str | None
    last_name: str | None
    language_code: str | None
    private: bool


@dataclass(frozen=True)
class Registration:
    """A user's row as it will be once `write` ran in some unit of work."""

    user: User
    write: InSameUnit


class UserService:
    """Who talks to the bot."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._admin_ids = frozenset(stores.settings.admin_user_ids)

    async def register(
        self,
        *,
        user_id: int,
        username: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
        private: bool = True,
    ) -> User:
        """Create or refresh a user; ids in ADMIN_USER_IDS are admins.

        Args:
            private: they wrote to the bot in private (they become, or are again, a broadcast
                recipient); False for someone seen only in a group.
        """
        profile = Profile(user_id, username, first_name, last_name, language_code, private)
        async with self._stores.unit_of_work("register") as uow:
            row = await self._write(uow, profile)
        return User.from_row(row)

    async def apply(self, registration: Registration) -> None:
        """Write a registration that no other unit of work carried, in its own."""
        try:
            async with self._stores.unit_of_work("register") as uow:
                await registration.write(uow)
        except AlreadyExists:  # registered meanwhile from another chat: refresh that row
            async with self._stores.unit_of_work("register") as uow:
                await registration.write(uow)

    def registration(self, profile: Profile, known: User | None) -> Registration:
        """What `register` would write and return, as a step for another action's unit of
        work (a newcomer's first save registers them in the save's own transaction)."""
        if known is None:
            role = "admin" if profile.user_id in self._admin_ids else "user"
            user = User(
                profile.user_id, profile.username, profile.first_name, role, profile.private
            )
        else:
            user = replace(
                known,
                username=profile.username,
                first_name=profile.first_name,
                is_active=known.is_active or profile.private,
            )

        async def write(uow: UnitOfWork) -> None:
            await self._write(uow, profile)

        return Registration(user, write)

    async def _write(self, uow: UnitOfWork, profile: Profile) -> UserRow:
        is_admin = profile.user_id in self._admin_ids
        row = await uow.users.register(
            user_id=profile.user_id,
            username=profile.username,
            first_name=profile.first_name,
            last_name=profile.last_name,
            language_code=profile.language_code,
            role="admin" if is_admin else "user",
            private=profile.private,
        )
        if is_admin and row.role_granted_by is None:  # a /role decision wins
            row.role = "admin"
        return row

    def timezone_step(self, *, user_id: int, name: str) -> InSameUnit:
        """The step that stores the user's time zone inside another action's unit of work
        (the first /remind makes UTC their explicit choice in the reminder's own)."""
        canonical = zone_named(name)

        async def choose(uow: UnitOfWork) -> None:
            if not await uow.users.set_timezone(user_id, canonical):
                raise UnknownUser(user_id)

        return choose

    async def set_timezone(self, *, user_id: int, name: str) -> str:
        """Store the user's time zone (any case of an IANA name).

        Returns:
            The canonical name stored, e.g. "Europe/Berlin".

        Raises:
            UnknownZone: not an IANA zone name; nothing was written.
            UnknownUser: no such user.
        """
        canonical = zone_named(name)
        async with self._stores.unit_of_work("set_timezone") as uow:
            if not await uow.users.set_timezone(user_id, canonical):
                raise UnknownUser(user_id)
        return canonical

    async def get(self, *, user_id: int) -> User | None:
        """The user, or None if they never talked to the bot."""
        async with self._stores.reading() as repos:
            row = await repos.users.get(user_id)
        return None if row is None else User.from_row(row)
