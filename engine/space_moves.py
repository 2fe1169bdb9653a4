"""Moving a whole space to a new id: what a group's upgrade to a supergroup asks of the engine.

Telegram gives an upgraded group a new chat id, and the space id is the chat id. The move is
one unit of work (flush → vector write → commit): the SQL rows change space, the space's
vectors are written under the new id (vectors are sharded by space) and deleted under the
old one; a failed commit puts the old vectors back. It is idempotent: both of Telegram's
service messages, a send that meets `ChatMigrated`, or a retry may each run it, in any order
and more than once; a run that finds nothing left under the old id changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging

from engine.errors import InvalidInput
from engine.stores import Stores
from engine.uow import InSameUnit
from engine.vector_index import VectorRef

log = logging.getLogger("memorybot.engine")
MOVED_PREFIX = "space_moved:"


def moved_key(old: int) -> str:
    """The kv key recording where space `old` went."""
    return f"{MOVED_PREFIX}{old}"


class SpaceMoves:
    """Moves spaces (groups that became supergroups) and says where one went."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def move(self, *, old: int, new: int, also: InSameUnit | None = None) -> int:
        """Move every memory, tag, reminder and vector of group space `old` to group space
        `new` (which may already hold memories of its own: they are kept), with `also` (the
        chat's own traces) in the same unit of work.

        Returns:
            How many memories moved (0 when a move before this one took them all).

        Raises:
            InvalidInput: `old` and `new` are not two different group ids.
            WriteFailed: a storage step failed; both stores are as they were.
        """
        if old == new or old >= 0 or new >= 0:
            raise InvalidInput(f"a space moves from one group id to another, not {old} → {new}")
        async with self._stores.unit_of_work("move_space") as uow:
            # A second mover of the same space waits here for this one's commit, then finds
            # nothing left to move.
            await uow.spaces.lock_move(old)
            await uow.kv.set(moved_key(old), str(new))
            await uow.flush()
            ids = sorted(map(str, await uow.memories.ids_in_space(old)))
            moved = await uow.spaces.move_memories(old=old, new=new)
            if also is not None:
                await also(uow)
            await uow.flush()
            if ids:
                old_refs = [VectorRef(i, old) for i in ids]
                records = await self._stores.vectors.fetch(old_refs)
                # Deleted before written: when both ids share a shard, the write must win. No
                # vector of these ids is left to keep, so the write's undo only deletes.
                await uow.delete_vectors(old_refs)
                await uow.upsert_vectors(
                    [dataclasses.replace(r, space_id=new) for r in records], replacing=False
                )
        log.info("space moved old=%d new=%d memories=%d", old, new, moved)
        return moved

    async def moved_to(self, old: int) -> int | None:
        """Where space `old` was moved, or None if it never was."""
        async with self._stores.reading() as repos:
            value = await repos.kv.get(moved_key(old))
        return None if value is None else int(value)
