"""Repositories: typed queries over one AsyncSession, grouped by what they hold."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.repositories.broadcasts import BroadcastRepository
from storage.repositories.inbox import InboxRepository
from storage.repositories.memories import MemoryRepository
from storage.repositories.records import AuditRepository, KeyValueRepository
from storage.repositories.spaces import SpaceRepository
from storage.repositories.tags import TagRepository
from storage.repositories.updates import DeadLetterRepository
from storage.repositories.users import ConversationRepository, UserRepository


class Repositories:
    """Every repository over one session: what a unit of work (or a read) hands out."""

    def __init__(self, session: AsyncSession) -> None:
        self.memories = MemoryRepository(session)
        self.tags = TagRepository(session)
        self.users = UserRepository(session)
        self.conversations = ConversationRepository(session)
        self.audit = AuditRepository(session)
        self.kv = KeyValueRepository(session)
        self.broadcasts = BroadcastRepository(session)
        self.inbox = InboxRepository(session)
        self.dead_letters = DeadLetterRepository(session)
        self.spaces = SpaceRepository(session)


__all__ = [
    "AuditRepository",
    "BroadcastRepository",
    "ConversationRepository",
    "DeadLetterRepository",
    "InboxRepository",
    "KeyValueRepository",
    "MemoryRepository",
    "Repositories",
    "SpaceRepository",
    "TagRepository",
    "UserRepository",
]
