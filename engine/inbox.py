"""The inbox service: store updates before confirming them, lease them per chat, finish them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from engine.clock import utcnow
from engine.stores import Stores
from storage.repositories.inbox_rows import DONE, PARKED, Claimed, Received

HEARTBEAT_KEY = "inbox:heartbeat"  # + ":<owner>", one per worker
FORGET_LEASES = 10
__all__ = ["DONE", "PARKED", "Claimed", "Inbox", "Received"]


class Inbox:
    """One worker's view of the shared inbox (its leases carry `owner`)."""

    def __init__(self, stores: Stores, *, lease_s: float = 30.0) -> None:
        self._stores = stores
        self.owner = f"w-{uuid.uuid4().hex[:12]}"
        self.lease = timedelta(seconds=lease_s)
        self._told: set[int] = set()  # chats this process told of a delay, until it ends

    def tell_once(self, chat_ids: Iterable[int]) -> list[int]:
        """Those of `chat_ids` not yet told that their messages wait (now marked told).

        The intake (holding a batch while SQL is down) and the worker (while a breaker is
        open) both tell chats; with this they tell each chat once per wait, even when the
        inbox rows that record it (`notified`) could not be written.
        """
        new = sorted(set(chat_ids) - self._told)
        self._told.update(new)
        return new

    def wait_over(self, chat_id: int) -> None:
        """An update of `chat_id` was finished: a later delay is a new wait, told again."""
        self._told.discard(chat_id)

    @property
    def shared(self) -> bool:
        """True when several processes may share this inbox (PostgreSQL)."""
        return self._stores.db.dialect == "postgresql"

    async def store(self, updates: Sequence[Received]) -> int:
        """Write updates in one transaction (redeliveries are skipped). Only after this
        returns may they be confirmed to Telegram.

        Returns:
            How many of them were new.
        """
        async with self._stores.unit_of_work("inbox_store") as uow:
            return await uow.inbox.add(updates, now=utcnow())

    async def finish_and_claim(
        self, done: Sequence[int], *, chats: int, run: int = 16, release: Sequence[int] = ()
    ) -> list[Claimed]:
        """Mark `done` finished, give back `release` (leased, left unprocessed), and lease up
        to `chats` chats (up to `run` updates each) to this worker, in one transaction: a
        chat's next update is claimable at once."""
        _, claimed = await self.store_and_claim((), done, chats=chats, run=run, release=release)
        return claimed

    async def store_and_claim(
        self,
        updates: Sequence[Received],
        done: Sequence[int],
        *,
        chats: int,
        run: int = 16,
        release: Sequence[int] = (),
    ) -> tuple[int, list[Claimed]]:
        """`store` and `finish_and_claim` in one transaction: the process that receives a
        batch leases it (and whatever else is claimable) at once, and hands it to its lanes
        with no claim transaction of its own. The claim keeps every rule of
        `finish_and_claim` (a chat whose older update waits or is leased elsewhere is not
        taken).

        Returns:
            How many of `updates` were new, and what this worker leased.
        """
        now = utcnow()
        op = "inbox_store_claim" if updates else "inbox_claim"
        async with self._stores.unit_of_work(op) as uow:
            new = await uow.inbox.add(updates, now=now) if updates else 0
            await uow.inbox.finish(done, status=DONE, now=now)
            if release:
                await uow.inbox.release(owner=self.owner, update_ids=release)
            if chats <= 0:
                return new, []
            return new, await uow.inbox.claim(
                owner=self.owner, now=now, lease_until=now + self.lease, chats=chats, run=run
            )

    async def renew(self) -> int:
        """Keep this worker's leases alive (called well within the lease time) and say that
        it is running; returns how many workers are running (this one included).

        Each worker has its own heartbeat; one not renewed for FORGET_LEASES leases is
        deleted (a worker that was killed never retires).
        """
        now = utcnow()
        async with self._stores.unit_of_work("inbox_renew") as uow:
            await uow.inbox.renew(owner=self.owner, lease_until=now + self.lease)
            beats = await uow.kv.with_prefix(HEARTBEAT_KEY)
            beats[self._heartbeat] = now.isoformat()
            await uow.kv.set(self._heartbeat, beats[self._heartbeat])
            await uow.kv.delete_keys(
                [k for k, v in beats.items() if self._age(v, now) > self.lease * FORGET_LEASES]
            )
        return self._fresh(beats, now)

    async def retire(self) -> None:
        """This worker stops: it no longer counts as a running bot."""
        async with self._stores.unit_of_work("inbox_retire") as uow:
            await uow.kv.delete_keys([self._heartbeat])

    async def workers(self) -> int:
        """How many bot processes renewed their leases within the last lease period."""
        async with self._stores.reading() as repos:
            beats = await repos.kv.with_prefix(HEARTBEAT_KEY)
        return self._fresh(beats, utcnow())

    async def worker_alive(self) -> bool:
        """True if some bot process renewed its leases within the last lease period."""
        return await self.workers() > 0

    @property
    def _heartbeat(self) -> str:
        return f"{HEARTBEAT_KEY}:{self.owner}"

    def _fresh(self, beats: dict[str, str], now: datetime) -> int:
        """How many of `beats` (heartbeat key -> time) are younger than a lease."""
        return sum(self._age(value, now) < self.lease for value in beats.values())

    @staticmethod
    def _age(value: str, now: datetime) -> timedelta:
        try:
            return now - datetime.fromisoformat(value)
        except (ValueError, TypeError):  # not a time, or one without a zone: long gone
            return timedelta.max

    async def release(self, update_ids: Sequence[int] | None = None) -> None:
        """Give leased updates back to the inbox (all of them when None)."""
        async with self._stores.unit_of_work("inbox_release") as uow:
            await uow.inbox.release(owner=self.owner, update_ids=update_ids)

    async def release_stale(self) -> None:
        """At start on a single-process store: leases of a previous run are void."""
        if not self.shared:
            async with self._stores.unit_of_work("inbox_release_stale") as uow:
                await uow.inbox.release_all()

    async def retry_later(self, update_id: int, *, delay_s: float, count: bool) -> None:
        """Put one update back, due in `delay_s` seconds; `count` adds one failed attempt."""
        not_before = utcnow() + timedelta(seconds=delay_s)
        async with self._stores.unit_of_work("inbox_retry") as uow:
            await uow.inbox.retry_later(
                update_id, owner=self.owner, not_before=not_before, count=count
            )

    async def finish(self, update_ids: Sequence[int], *, status: str = DONE) -> None:
        """Mark updates finished (their effects are committed) in one transaction."""
        async with self._stores.unit_of_work("inbox_finish") as uow:
            await uow.inbox.finish(update_ids, status=status, now=utcnow())

    async def statuses(self, update_ids: Sequence[int]) -> dict[int, str]:
        """Status of each update the inbox holds (pending, done, parked)."""
        async with self._stores.reading() as repos:
            return await repos.inbox.statuses(update_ids)

    async def waiting_chats(self, *, older_than_s: float) -> list[int]:
        """Chats with an update waiting longer than `older_than_s` that were not told yet
        (each is marked told)."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        async with self._stores.unit_of_work("inbox_waiting") as uow:
            chats = await uow.inbox.waiting(received_before=cutoff)
        return self.tell_once(chats)

    async def depth(self) -> tuple[int, datetime | None]:
        """Pending updates and the arrival time of the oldest."""
        async with self._stores.reading() as repos:
            return await repos.inbox.depth()
