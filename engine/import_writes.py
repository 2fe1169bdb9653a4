"""Writing an /import: skip what the space holds already, check the quota, then bulk-insert."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.errors import InvalidInput, UnknownUser
from engine.import_json import ImportItem
from engine.inserts import insert_chunks
from engine.memory import NewMemory, is_personal
from engine.quotas import QuotaExceeded, QuotaService
from engine.stores import Stores
from engine.users import User
from storage.models import utcnow


class ImportTooLarge(InvalidInput):
    """The import would take the space over its stored-memories quota."""

    def __init__(self, new: int, room: int, cap: int) -> None:
        super().__init__(
            f"This import would add {new:,} memories, but there is room for only {room:,} more "
            f"(the limit is {cap:,}). Nothing was imported; /forget some, or import a smaller "
            "file."
        )
        self.new = new
        self.room = room


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did."""

    added: int  # new memories written
    present: int  # skipped: the space holds that text already
    expired: int  # skipped: their expiry (from the export) had passed


async def import_memories(
    stores: Stores,
    quotas: QuotaService,
    *,
    space_id: int,
    author_id: int,
    items: Sequence[ImportItem],
    owner: User | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportOutcome:
    """Add the `items` that space `space_id` does not hold yet, through the bulk path.

    Idempotent: a text the space holds already is skipped (one query per chunk), so the same
    file imported twice adds nothing the second time. The quota is checked for the whole
    import before anything is written. Chunks commit one by one (`on_progress` gets how many
    of how many new memories are written); a failure keeps the chunks committed before it,
    and importing the file again adds the rest.

    Args:
        owner: the personal space's user (their quota override counts), None for a group.

    Raises:
        ImportTooLarge: over the stored-memories quota; nothing was written.
        UnknownUser: a personal space of nobody.
        WriteFailed: a chunk failed (the note says how many were saved before it).
    """
    now = utcnow()
    live = [item for item in items if item.expires_at is None or item.expires_at > now]
    size = stores.settings.bulk_chunk_size
    fresh: list[ImportItem] = []
    async with stores.reading() as repos:
        if is_personal(space_id) and not await repos.users.existing_ids([space_id]):
            raise UnknownUser(space_id)
        for start in range(0, len(live), size):
            chunk = live[start : start + size]
            present = await repos.memories.texts_present(
                space_id=space_id, texts=[item.text for item in chunk], now=now
            )
            fresh.extend(item for item in chunk if item.text not in present)
    if fresh:
        held = await quotas.held(space_id)
        try:
            quotas.check_held(held + len(fresh) - 1, space_id, owner=owner)
        except QuotaExceeded as full:
            raise ImportTooLarge(len(fresh), max(0, full.limit - held), full.limit) from None
        await insert_chunks(
            stores,
            [
                NewMemory(
                    space_id=space_id,
                    author_id=author_id,
                    text=item.text,
                    tags=item.tags,
                    created_at=item.created_at,
                    expires_at=item.expires_at,
                )
                for item in fresh
            ],
            on_chunk=None if on_progress is None else lambda done: on_progress(done, len(fresh)),
        )
    return ImportOutcome(len(fresh), len(live) - len(fresh), len(items) - len(live))
