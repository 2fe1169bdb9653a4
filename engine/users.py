"""Users: registration and lookup."""

from __future__ import annotations

from dataclasses import dataclass

from storage import repositories as repo
from storage.db import Database
from storage.models import UserRow


@dataclass(frozen=True)
class User:
    id: int
    username: str | None
    first_name: str | None
    role: str
    is_active: bool

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(row.id, row.username, row.first_name, row.role, row.is_active)


class UserService:
    def __init__(self, *, db: Database, admin_ids: tuple[int, ...] = ()) -> None:
        self.db = db
        self.admin_ids = frozenset(admin_ids)

    async def register(
        self,
        *,
        user_id: int,
        username: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> User:
        """Create or refresh a user; ids in ADMIN_USER_IDS start as admins."""
        async with self.db.writes() as session:
            row = await repo.register_user(
                session,
                user_id=user_id,
                username=username,
                first_name=first_name,
                last_name=last_name,
                language_code=language_code,
                role="admin" if user_id in self.admin_ids else "user",
            )
            if user_id in self.admin_ids:
                row.role = "admin"
            row.is_active = True
            await session.commit()
            return User.from_row(row)

    async def get(self, *, user_id: int) -> User | None:
        async with self.db.reads() as session:
            row = await repo.get_user(session, user_id=user_id)
        return None if row is None else User.from_row(row)
