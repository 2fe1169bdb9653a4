"""Broadcasts as a durable outbox: one row per recipient, claimed before it is sent and
marked as soon as it is sent.

A delivery is claimed (status `sending`, an owner, a lease) in a committed transaction before
its send, and only its owner marks it: two workers, even two leaders at once, never send the
same delivery. A claim whose worker died lapses with its lease and is claimed again; on a
single-process SQLite store, claims of a previous run are void at start.
"""

from __future__ import annotations

from datetime import timedelta

from engine.broadcast_types import (
    BLOCKED,
    CANCELLED,
    CLAIMED,
    DONE,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    BroadcastProgress,
    Delivery,
)
from engine.clock import utcnow
from engine.stores import Stores
from engine.uow import InSameUnit


class BroadcastService:
    """Create, follow and cancel broadcasts; the delivery worker (jobs.delivery) sends them."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def recipients(self) -> int:
        """How many users a broadcast would reach now (active users)."""
        async with self._stores.reading() as repos:
            return await repos.users.count(active=True)

    async def create(
        self,
        *,
        author_id: int,
        text: str,
        progress_chat_id: int | None = None,
        progress_message_id: int | None = None,
        also: InSameUnit | None = None,
    ) -> int:
        """One transaction: the broadcast row and one pending delivery per active user (and
        `also`, e.g. clearing the confirmation that asked for it: a retry after a failure
        finds it again, one after the commit finds it gone — never two broadcasts). NUL
        characters are dropped (PostgreSQL refuses them in text)."""
        text = text.replace("\x00", "")
        async with self._stores.unit_of_work("broadcast") as uow:
            if also is not None:
                await also(uow)
            row = await uow.broadcasts.create(
                author_id=author_id,
                text=text,
                status=SENDING,
                pending=PENDING,
                progress_chat_id=progress_chat_id,
                progress_message_id=progress_message_id,
            )
            uow.audit.add(
                action="broadcast",
                actor_id=author_id,
                target=str(row.id),
                details={"recipients": row.total, "chars": len(text)},
            )
        return row.id

    async def progress(self, broadcast_id: int) -> BroadcastProgress | None:
        """Counts per delivery status, or None for an unknown broadcast."""
        async with self._stores.reading() as repos:
            row = await repos.broadcasts.get(broadcast_id)
            if row is None:
                return None
            counts = await repos.broadcasts.status_counts(broadcast_id)
        return BroadcastProgress(
            row.id,
            row.status,
            row.text,
            row.total,
            counts.get(SENT, 0),
            counts.get(FAILED, 0),
            counts.get(BLOCKED, 0),
            counts.get(PENDING, 0) + counts.get(CLAIMED, 0),  # claimed: not sent yet either
            row.created_at,
            row.progress_chat_id,
            row.progress_message_id,
        )

    async def ids(self, *, status: str | None = None, limit: int = 5) -> list[int]:
        """Newest broadcast ids, optionally only those with `status`."""
        async with self._stores.reading() as repos:
            return await repos.broadcasts.newest_ids(status=status, limit=limit)

    async def cancel(self, *, broadcast_id: int, actor_id: int) -> bool:
        """Stop a running broadcast (deliveries not yet sent stay unsent); audited."""
        async with self._stores.unit_of_work("broadcast_cancel") as uow:
            changed = await uow.broadcasts.finish(
                broadcast_id, from_status=SENDING, to_status=CANCELLED
            )
            uow.audit.add(
                action="broadcast_cancel",
                actor_id=actor_id,
                target=str(broadcast_id),
                success=changed,
            )
        return changed

    async def status(self, broadcast_id: int) -> str | None:
        """The broadcast's status, or None if there is no such broadcast."""
        async with self._stores.reading() as repos:
            row = await repos.broadcasts.get(broadcast_id)
        return None if row is None else row.status

    @property
    def lease(self) -> timedelta:
        """How long a claim holds unless renewed."""
        return timedelta(seconds=self._stores.settings.broadcast_lease_s)

    async def claim(self, broadcast_id: int, *, owner: str, limit: int = 1) -> list[Delivery]:
        """Claim the next deliveries to send (committed before anything is sent).

        Args:
            broadcast_id: the broadcast; nothing is claimed once it is no longer sending.
            owner: the claiming worker (only it may mark or release the claims).
            limit: how many at most.

        Returns:
            The claimed deliveries, oldest first (empty: nothing left to claim now).
        """
        now = utcnow()
        async with self._stores.unit_of_work("delivery_claim") as uow:
            rows = await uow.broadcasts.claim(
                broadcast_id,
                owner=owner,
                now=now,
                lease_until=now + self.lease,
                limit=limit,
                pending=PENDING,
                claimed=CLAIMED,
                running=SENDING,
            )
        return [Delivery(id_, broadcast_id, user_id, n) for id_, user_id, n in rows]

    async def renew(self, *, owner: str) -> int:
        """Extend every claim `owner` holds by a full lease; returns how many."""
        async with self._stores.unit_of_work("delivery_renew") as uow:
            return await uow.broadcasts.renew(
                owner=owner, claimed=CLAIMED, lease_until=utcnow() + self.lease
            )

    async def release(self, *, owner: str, ids: list[int] | None = None) -> int:
        """Give `owner`'s claims (of `ids` only, if given) back to the queue, unsent."""
        async with self._stores.unit_of_work("delivery_release") as uow:
            return await uow.broadcasts.release(
                owner=owner, claimed=CLAIMED, pending=PENDING, ids=ids
            )

    async def release_stale(self) -> int:
        """At start on a single-process store (SQLite): claims of a previous run are void.
        Shared stores (PostgreSQL) wait for a claim's lease to lapse instead."""
        if self._stores.dialect == "postgresql":
            return 0
        async with self._stores.unit_of_work("delivery_release") as uow:
            return await uow.broadcasts.release(owner=None, claimed=CLAIMED, pending=PENDING)

    async def mark(
        self, delivery: Delivery, status: str, *, owner: str, error: str | None = None
    ) -> bool:
        """Record the outcome of a delivery `owner` holds (a blocked recipient is made
        inactive); False, and nothing changed, if the claim was lost."""
        async with self._stores.unit_of_work("delivery") as uow:
            marked = await uow.broadcasts.mark_delivery(
                delivery.id,
                owner=owner,
                claimed=CLAIMED,
                status=status,
                error=error,
                sent=status == SENT,
            )
            if marked and status == BLOCKED:
                await uow.users.deactivate(delivery.user_id)
        return marked

    async def unfinished(self, broadcast_id: int) -> int:
        """Deliveries not yet sent, failed or blocked (pending, or claimed by a worker)."""
        async with self._stores.reading() as repos:
            counts = await repos.broadcasts.status_counts(broadcast_id)
        return counts.get(PENDING, 0) + counts.get(CLAIMED, 0)

    async def finish(self, broadcast_id: int) -> bool:
        """Mark a running broadcast done once no delivery is pending or claimed; False if
        it is not running or some are."""
        async with self._stores.unit_of_work("broadcast_done") as uow:
            counts = await uow.broadcasts.status_counts(broadcast_id)
            if counts.get(PENDING, 0) or counts.get(CLAIMED, 0):
                return False
            return await uow.broadcasts.finish(broadcast_id, from_status=SENDING, to_status=DONE)
