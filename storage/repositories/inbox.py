"""The inbox: updates stored before they are confirmed, claimed per chat, finished or parked.

A chat's updates are processed in order: only a chat's oldest pending update (its head) can
be claimed, and claiming it leases the chat's whole pending run to one worker. On PostgreSQL
the claim skips rows another worker holds (`FOR UPDATE SKIP LOCKED`), so several processes
share one inbox; a crashed worker's lease runs out and its rows are claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import InboxRow
from storage.repositories.inbox_rows import PENDING, Claimed, Received


class InboxRepository:
    """Typed queries over the inbox table."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, updates: Sequence[Received], *, now: datetime) -> int:
        """Store new updates in one statement; ids already there are skipped. Returns how
        many were new."""
        if not updates:
            return 0
        rows = [
            {
                "update_id": u.update_id,
                "chat_id": u.chat_id,
                "raw": u.raw,
                "status": PENDING,
                "attempts": 0,
                "notified": u.notified,
                "received_at": now,
            }
            for u in {u.update_id: u for u in updates}.values()
        ]
        dialect = self._session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(InboxRow).values(rows).on_conflict_do_nothing()
        result = await self._session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def requeue(self, update: Received, *, now: datetime) -> None:
        """Make `update` pending again with its raw JSON (a dead letter replayed)."""
        row = await self._session.get(InboxRow, update.update_id)
        if row is None:
            await self.add([update], now=now)
            return
        row.raw, row.chat_id, row.status = update.raw, update.chat_id, PENDING
        row.attempts, row.not_before, row.owner, row.lease_until = 0, None, None, None
        row.notified, row.finished_at = False, None

    async def claim(
        self, *, owner: str, now: datetime, lease_until: datetime, chats: int, run: int
    ) -> list[Claimed]:
        """Lease up to `chats` chats whose head is free and due, with up to `run` pending
        updates each; returns them in update order."""
        older = aliased(InboxRow)
        head_free = and_(
            InboxRow.status == PENDING,
            or_(InboxRow.lease_until.is_(None), InboxRow.lease_until < now),
            or_(InboxRow.not_before.is_(None), InboxRow.not_before <= now),
            ~exists().where(
                older.chat_id == InboxRow.chat_id,
                older.status == PENDING,
                older.update_id < InboxRow.update_id,
            ),
        )
        heads = (
            select(InboxRow.update_id, InboxRow.chat_id)
            .where(head_free)
            .order_by(InboxRow.update_id)
            .limit(chats)
            .with_for_update(skip_locked=True, of=InboxRow)
        )
        lanes = {row.chat_id: row.update_id for row in await self._session.execute(heads)}
        if not lanes:
            return []
        return await self._lease_runs(list(lanes), owner, now, lease_until, run)

    async def _lease_runs(
        self, chat_ids: list[int], owner: str, now: datetime, until: datetime, run: int
    ) -> list[Claimed]:
        """Lease each chat's first `run` pending updates, stopping at one leased elsewhere
        (order is kept), in two statements whatever the number of chats."""
        free = or_(
            InboxRow.lease_until.is_(None), InboxRow.lease_until < now, InboxRow.owner == owner
        )
        rank = func.row_number().over(partition_by=InboxRow.chat_id, order_by=InboxRow.update_id)
        ranked = (
            select(
                InboxRow.update_id,
                InboxRow.chat_id,
                case((free, True), else_=False).label("free"),
                rank.label("rank"),
            )
            .where(InboxRow.chat_id.in_(chat_ids), InboxRow.status == PENDING)
            .subquery()
        )
        rows = await self._session.execute(
            select(ranked.c.update_id, ranked.c.chat_id, ranked.c.free)
            .where(ranked.c.rank <= run)
            .order_by(ranked.c.chat_id, ranked.c.update_id)
        )
        ids: list[int] = []
        blocked: set[int] = set()
        for update_id, chat_id, is_free in rows:
            if chat_id in blocked or not is_free:
                blocked.add(chat_id)  # a row leased elsewhere: the rest must wait behind it
                continue
            ids.append(update_id)
        if not ids:
            return []
        leased = await self._session.execute(
            update(InboxRow)
            .where(InboxRow.update_id.in_(ids))
            .values(owner=owner, lease_until=until)
            .returning(
                InboxRow.update_id,
                InboxRow.chat_id,
                InboxRow.raw,
                InboxRow.attempts,
                InboxRow.received_at,
            )
        )
        return sorted((Claimed(*r) for r in leased), key=lambda c: c.update_id)

    async def renew(self, *, owner: str, lease_until: datetime) -> None:
        """Extend the lease of every pending row `owner` holds."""
        await self._session.execute(
            update(InboxRow)
            .where(InboxRow.owner == owner, InboxRow.status == PENDING)
            .values(lease_until=lease_until)
        )

    async def release(self, *, owner: str, update_ids: Sequence[int] | None = None) -> None:
        """Give rows back (all of `owner`'s when `update_ids` is None)."""
        query = update(InboxRow).where(InboxRow.owner == owner, InboxRow.status == PENDING)
        if update_ids is not None:
            query = query.where(InboxRow.update_id.in_(update_ids))
        await self._session.execute(query.values(owner=None, lease_until=None))

    async def release_all(self) -> None:
        """Free every lease (a single-process store at start: no other worker holds any)."""
        await self._session.execute(
            update(InboxRow).where(InboxRow.status == PENDING).values(owner=None, lease_until=None)
        )

    async def retry_later(
        self, update_id: int, *, owner: str, not_before: datetime, count: bool
    ) -> None:
        """Put one update back, due at `not_before` (its chat waits behind it)."""
        values: dict[str, Any] = {"owner": None, "lease_until": None, "not_before": not_before}
        if count:
            values["attempts"] = InboxRow.attempts + 1
        await self._session.execute(
            update(InboxRow)
            .where(InboxRow.update_id == update_id, InboxRow.owner == owner)
            .values(**values)
        )

    async def finish(self, update_ids: Sequence[int], *, status: str, now: datetime) -> None:
        """Mark updates done (or parked) and drop their raw JSON."""
        if update_ids:
            await self._session.execute(
                update(InboxRow)
                .where(InboxRow.update_id.in_(update_ids))
                .values(status=status, raw=None, owner=None, lease_until=None, finished_at=now)
            )

    async def statuses(self, update_ids: Sequence[int]) -> dict[int, str]:
        """The status of each of `update_ids` that the inbox holds."""
        rows = await self._session.execute(
            select(InboxRow.update_id, InboxRow.status).where(InboxRow.update_id.in_(update_ids))
        )
        return {int(r[0]): str(r[1]) for r in rows}

    async def waiting(self, *, received_before: datetime) -> list[int]:
        """Chats with an update pending since before `received_before` not yet told of the
        delay; marks them told.

        A chat is told once per wait: while it still has a pending update it was told about,
        the updates it sends meanwhile are covered by that notice. Once those are finished
        (the store is back), a later wait is told again.
        """
        told = aliased(InboxRow)
        query = select(InboxRow.chat_id).where(
            InboxRow.status == PENDING,
            InboxRow.received_at < received_before,
            InboxRow.notified.is_(False),
            InboxRow.chat_id != 0,
            ~exists().where(
                told.chat_id == InboxRow.chat_id,
                told.status == PENDING,
                told.notified.is_(True),
            ),
        )
        chats = sorted(set(await self._session.scalars(query)))
        if chats:
            await self._session.execute(
                update(InboxRow)
                .where(InboxRow.status == PENDING, InboxRow.chat_id.in_(chats))
                .values(notified=True)
            )
        return chats

    async def depth(self) -> tuple[int, datetime | None]:
        """How many updates are pending, and when the oldest arrived."""
        row = (
            await self._session.execute(
                select(func.count(), func.min(InboxRow.received_at)).where(
                    InboxRow.status == PENDING
                )
            )
        ).one()
        return int(row[0]), row[1]

    async def prune(self, *, before: datetime) -> int:
        """Forget finished updates older than `before` (Telegram redelivers for ~24 h)."""
        result = await self._session.execute(
            delete(InboxRow).where(InboxRow.status != PENDING, InboxRow.finished_at < before)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
