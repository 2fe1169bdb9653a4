"""The inbox's claims (both databases): chat heads only, leases, order, retries, takeover.

Each test drives `engine.inbox.Inbox` on `fake_engine.stores` with a clock it moves by hand
(`engine.inbox.utcnow` is patched), so leases and `not_before` expire without sleeping. Two
workers are two `Inbox` instances (two owners) on the same stores; on PostgreSQL they also
claim at the same moment and never get the same chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.inbox import DONE, PARKED, Claimed, Inbox
from engine.stores import Stores
from storage.models import InboxRow
from tests.unit.inbox_kit import Clock, received

LEASE_S = 30.0
A, B, C = 1_001, 1_002, -1_000_000_800_001  # two private chats and a group


def as_utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive (they are stored in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ids(claimed: Sequence[Claimed]) -> list[int]:
    return [c.update_id for c in claimed]


def by_chat(claimed: Sequence[Claimed]) -> dict[int, list[int]]:
    runs: dict[int, list[int]] = {}
    for row in claimed:
        runs.setdefault(row.chat_id, []).append(row.update_id)
    return runs


async def claim(inbox: Inbox, *, chats: int = 64, run: int = 16) -> list[Claimed]:
    return await inbox.finish_and_claim([], chats=chats, run=run)


async def seed(inbox: Inbox) -> None:
    """Chat A: 1, 2, 3; chat B: 4, 5; group C: 6."""
    chats = {1: A, 2: A, 3: A, 4: B, 5: B, 6: C}
    await inbox.store([received(u, c) for u, c in chats.items()])


# ---- storing ------------------------------------------------------------------------------------
async def test_store_is_idempotent_and_counts_only_new_updates(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    assert await inbox.store([received(1, A)]) == 1
    assert await inbox.store([received(1, A)]) == 0  # Telegram delivered it again
    assert await inbox.store([received(1, A), received(2, A), received(2, A)]) == 1
    assert await inbox.store([]) == 0
    assert await inbox.statuses([1, 2, 3]) == {1: "pending", 2: "pending"}
    assert (await inbox.depth())[0] == 2
    assert ids(await claim(inbox)) == [1, 2]  # each once


async def test_a_finished_update_stored_again_stays_finished(stores: Stores, clock: Clock) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A)])
    await inbox.finish([1])
    assert await inbox.store([received(1, A)]) == 0
    assert await inbox.statuses([1]) == {1: DONE}
    assert await claim(inbox) == []


# ---- claiming -----------------------------------------------------------------------------------
async def test_claim_leases_each_chat_head_with_its_run_in_update_order(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await seed(inbox)
    claimed = await claim(inbox)
    assert ids(claimed) == [1, 2, 3, 4, 5, 6]
    assert by_chat(claimed) == {A: [1, 2, 3], B: [4, 5], C: [6]}
    assert all(c.attempts == 0 and c.raw is not None for c in claimed)
    assert claimed[0].raw == received(1, A).raw
    assert await claim(inbox) == []  # its own leases are not claimed twice


async def test_claim_takes_the_oldest_heads_first_and_at_most_run_updates_per_chat(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await seed(inbox)
    assert by_chat(await claim(inbox, chats=2, run=2)) == {A: [1, 2], B: [4, 5]}
    # 3 is not leased, but 2 is still pending before it: chat A has no free head.
    assert by_chat(await claim(inbox)) == {C: [6]}


async def test_a_second_worker_gets_only_the_other_chats(stores: Stores, clock: Clock) -> None:
    first, second = Inbox(stores), Inbox(stores)
    assert first.owner != second.owner
    await seed(first)
    assert by_chat(await claim(first, chats=1)) == {A: [1, 2, 3]}
    assert by_chat(await claim(second)) == {B: [4, 5], C: [6]}
    assert await claim(first) == []
    await second.store([received(7, A), received(8, B)])
    assert await claim(second) == []  # 7 waits behind A's leased run, 8 behind B's
    assert await claim(first) == []


async def test_a_chats_next_update_waits_until_its_head_is_finished(
    stores: Stores, clock: Clock
) -> None:
    first, second = Inbox(stores), Inbox(stores)
    await seed(first)
    await claim(first, chats=1, run=1)  # A's head (1) only
    assert 2 not in ids(await claim(second))
    await second.release()  # B and C back
    await first.release([1])  # the head given back: A is free again, from 1
    assert by_chat(await claim(second, chats=1)) == {A: [1, 2, 3]}


async def test_finishing_one_update_of_a_leased_run_keeps_the_rest_with_its_worker(
    stores: Stores, clock: Clock
) -> None:
    first, second = Inbox(stores), Inbox(stores)
    await seed(first)
    await claim(first, chats=1)  # A: 1, 2, 3
    assert by_chat(await first.finish_and_claim([1], chats=1)) == {B: [4, 5]}
    assert await first.statuses([1, 2]) == {1: DONE, 2: "pending"}
    assert 2 not in ids(await claim(second))  # 2 is A's head now, still leased to `first`


async def test_a_released_tail_still_waits_behind_a_leased_head(
    stores: Stores, clock: Clock
) -> None:
    first, second = Inbox(stores), Inbox(stores)
    await seed(first)
    await claim(first, chats=1)  # A: 1, 2, 3
    await first.release([2, 3])
    assert A not in by_chat(await claim(second))
    await first.release([1])
    assert by_chat(await claim(first)) == {A: [1, 2, 3]}


async def test_finish_and_claim_marks_done_and_claims_the_chats_next_update_at_once(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await seed(inbox)
    assert by_chat(await claim(inbox, chats=1, run=1)) == {A: [1]}
    assert by_chat(await inbox.finish_and_claim([1], chats=1, run=1)) == {A: [2]}
    assert await inbox.statuses([1, 2, 3]) == {1: DONE, 2: "pending", 3: "pending"}
    assert by_chat(await inbox.finish_and_claim([2], chats=3, run=16)) == {
        A: [3],
        B: [4, 5],
        C: [6],
    }
    assert await inbox.finish_and_claim([3, 4, 5, 6], chats=0) == []
    assert await inbox.depth() == (0, None)


async def test_store_and_claim_leases_a_new_batch_in_the_same_transaction(
    stores: Stores, clock: Clock
) -> None:
    """The intake's path: the batch it stores is leased to it at once (raw JSON in hand),
    except where order forbids: chat A waits behind its update retried later, and chat B's
    head is leased to another worker."""
    mine, other = Inbox(stores), Inbox(stores)
    await mine.store([received(1, A), received(2, B)])
    assert by_chat(await claim(mine, chats=1)) == {A: [1]}
    await mine.retry_later(1, delay_s=10, count=False)
    assert by_chat(await claim(other)) == {B: [2]}
    new, leased = await mine.store_and_claim(
        [received(3, A), received(4, B), received(5, C), received(5, C)], [], chats=8
    )
    assert new == 3
    assert by_chat(leased) == {C: [5]}
    assert [c.raw for c in leased] == [received(5, C).raw]
    again, none = await mine.store_and_claim([received(5, C)], [5], chats=8)
    assert (again, none) == (0, [])  # redelivered: not new; and nothing else is free
    assert await mine.statuses([5]) == {5: DONE}
    clock.advance(11)
    assert by_chat((await mine.store_and_claim([], [], chats=8))[1]) == {A: [1, 3]}


async def test_finished_updates_lose_their_raw_json_and_lease(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A), received(2, B)])
    await claim(inbox)
    await inbox.finish([1])
    await inbox.finish([2], status=PARKED)
    assert await inbox.statuses([1, 2]) == {1: DONE, 2: PARKED}
    async with stores.db.reads() as session:
        rows = (await session.execute(select(InboxRow.raw, InboxRow.owner))).all()
    assert [tuple(row) for row in rows] == [(None, None), (None, None)]
    assert await inbox.depth() == (0, None)


# ---- retries and leases -------------------------------------------------------------------------
async def test_retry_later_holds_the_whole_chat_until_it_is_due(
    stores: Stores, clock: Clock
) -> None:
    first, second = Inbox(stores), Inbox(stores)
    await seed(first)
    await claim(first, chats=1)  # A: 1, 2, 3
    await first.retry_later(1, delay_s=10, count=True)
    await first.release([2, 3])
    assert by_chat(await claim(second)) == {B: [4, 5], C: [6]}
    await second.release()
    clock.advance(9)
    assert A not in by_chat(await claim(first))
    await first.release()
    clock.advance(2)
    again = await claim(second, chats=1)
    assert by_chat(again) == {A: [1, 2, 3]}
    assert [c.attempts for c in again] == [1, 0, 0]


async def test_an_uncounted_retry_keeps_the_attempts(stores: Stores, clock: Clock) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A)])
    await claim(inbox)
    await inbox.retry_later(1, delay_s=0, count=False)  # a store outage: not the update's fault
    clock.advance(0.001)
    [again] = await claim(inbox)
    assert again.attempts == 0
    await inbox.retry_later(1, delay_s=0, count=True)
    clock.advance(0.001)
    [third] = await claim(inbox)
    assert third.attempts == 1


async def test_only_the_owner_can_put_its_update_back(stores: Stores, clock: Clock) -> None:
    first, second = Inbox(stores), Inbox(stores)
    await first.store([received(1, A)])
    await claim(first)
    await second.retry_later(1, delay_s=0, count=True)
    await second.release([1])
    clock.advance(1)
    assert await claim(second) == []  # still leased to `first`


async def test_an_expired_lease_is_taken_over_by_another_worker(
    stores: Stores, clock: Clock
) -> None:
    crashed, survivor = Inbox(stores, lease_s=LEASE_S), Inbox(stores, lease_s=LEASE_S)
    await seed(crashed)
    assert by_chat(await claim(crashed, chats=1)) == {A: [1, 2, 3]}
    clock.advance(LEASE_S - 1)
    assert A not in by_chat(await claim(survivor))
    await survivor.release()
    clock.advance(2)
    assert by_chat(await claim(survivor, chats=1)) == {A: [1, 2, 3]}
    await crashed.release()  # too late: the rows are the survivor's now
    assert await claim(crashed) != []
    assert A not in by_chat(await claim(crashed))


async def test_renewing_keeps_the_lease_and_says_a_worker_is_alive(
    stores: Stores, clock: Clock
) -> None:
    worker, other = Inbox(stores, lease_s=LEASE_S), Inbox(stores, lease_s=LEASE_S)
    assert not await other.worker_alive()
    await worker.store([received(1, A), received(2, B)])
    await claim(worker, chats=1)
    for _ in range(3):
        clock.advance(LEASE_S * 2 / 3)
        await worker.renew()
        assert by_chat(await claim(other)) == {B: [2]}
        await other.release()
    assert await other.worker_alive()
    clock.advance(LEASE_S + 1)
    assert not await other.worker_alive()
    assert by_chat(await claim(other)) == {A: [1], B: [2]}


async def test_release_stale_frees_old_leases_only_on_a_single_process_store(
    stores: Stores, clock: Clock
) -> None:
    previous_run = Inbox(stores)
    await seed(previous_run)
    await claim(previous_run, chats=2)
    restarted = Inbox(stores)
    await restarted.release_stale()
    if restarted.shared:  # PostgreSQL: the lease may belong to a live process elsewhere
        assert by_chat(await claim(restarted)) == {C: [6]}
    else:  # SQLite: one process; the lease is the dead run's
        assert by_chat(await claim(restarted)) == {A: [1, 2, 3], B: [4, 5], C: [6]}


# ---- delay notices, depth, pruning --------------------------------------------------------------
async def test_waiting_chats_are_told_once(stores: Stores, clock: Clock) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A), received(2, B), received(3, 0)])  # 0: no chat
    clock.advance(10)
    await inbox.store([received(4, C)])
    assert await inbox.waiting_chats(older_than_s=5) == [A, B]
    assert await inbox.waiting_chats(older_than_s=5) == []
    clock.advance(10)
    assert await inbox.waiting_chats(older_than_s=5) == [C]


async def test_depth_counts_pending_updates_and_the_oldest_arrival(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    assert await inbox.depth() == (0, None)
    first_arrival = clock.now
    await inbox.store([received(1, A)])
    clock.advance(5)
    await inbox.store([received(2, B)])
    count, oldest = await inbox.depth()
    assert count == 2
    assert oldest is not None
    assert as_utc(oldest) == first_arrival


async def test_prune_forgets_finished_updates_and_keeps_pending_ones(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await seed(inbox)
    await claim(inbox)
    await inbox.finish([1, 4])
    await inbox.finish([5], status=PARKED)
    async with stores.unit_of_work("prune") as uow:
        assert await uow.inbox.prune(before=clock.now - timedelta(seconds=1)) == 0
    async with stores.unit_of_work("prune") as uow:
        assert await uow.inbox.prune(before=clock.now + timedelta(days=1)) == 3
    assert await inbox.statuses([1, 2, 3, 4, 5, 6]) == {2: "pending", 3: "pending", 6: "pending"}
    assert (await inbox.depth())[0] == 3


# ---- PostgreSQL: several processes share one inbox ----------------------------------------------
# Concurrent claims (FOR UPDATE SKIP LOCKED) are PostgreSQL's: SQLite has one worker.
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@POSTGRES_ONLY
async def test_workers_claiming_at_once_never_share_a_chat_or_an_update(
    stores: Stores,
) -> None:
    assert stores.dialect == "postgresql"
    chats = list(range(5_000, 5_040))
    per_chat = 3
    updates = [
        received(10_000 + n * len(chats) + i, chat)
        for n in range(per_chat)
        for i, chat in enumerate(chats)
    ]
    workers = [Inbox(stores) for _ in range(4)]
    await workers[0].store(updates)
    seen: list[int] = []
    done: list[list[int]] = [[] for _ in workers]
    for _ in range(50):
        rounds = await asyncio.gather(
            *(w.finish_and_claim(done[n], chats=8, run=1) for n, w in enumerate(workers))
        )
        claimed_chats = [set(by_chat(r)) for r in rounds]
        for n, mine in enumerate(claimed_chats):
            for other in claimed_chats[n + 1 :]:
                assert not mine & other, "two workers hold the same chat"
        done = [ids(r) for r in rounds]
        seen.extend(u for r in done for u in r)
        if not any(done):
            break
    assert sorted(seen) == sorted(u.update_id for u in updates)  # each exactly once
    for chat in chats:  # and each chat in order
        of_chat = {x.update_id for x in updates if x.chat_id == chat}
        in_order = [u for u in seen if u in of_chat]
        assert in_order == sorted(in_order)
    assert await workers[0].depth() == (0, None)


@POSTGRES_ONLY
async def test_simultaneous_claims_of_leased_runs_never_overlap(stores: Stores) -> None:
    assert stores.dialect == "postgresql"
    updates = [received(20_000 + i, 6_000 + i % 30) for i in range(300)]
    await Inbox(stores).store(updates)
    workers = [Inbox(stores) for _ in range(6)]
    rounds = await asyncio.gather(*(claim(w, chats=10, run=16) for w in workers))
    claimed = [u for r in rounds for u in ids(r)]
    assert len(claimed) == len(set(claimed)), "an update was leased to two workers"
    chats = [c for r in rounds for c in by_chat(r)]
    assert len(chats) == len(set(chats)), "a chat was leased to two workers"
    assert len(set(chats)) == 30  # 6 x 10 slots: every chat went to someone
    for run in (by_chat(r) for r in rounds):
        for chat, run_ids in run.items():
            expected = sorted(u.update_id for u in updates if u.chat_id == chat)[:16]
            assert run_ids == expected


async def test_finish_and_claim_gives_back_what_a_lane_left_in_the_same_transaction(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await seed(inbox)
    assert by_chat(await claim(inbox, chats=1)) == {A: [1, 2, 3]}
    # The lane finished 1 and could not give back 2 and 3 (SQL failed): the next claim does.
    again = await inbox.finish_and_claim([1], chats=1, release=[2, 3])
    assert by_chat(again) == {A: [2, 3]}
    assert await inbox.statuses([1]) == {1: DONE}


async def test_each_worker_has_its_own_heartbeat_counted_while_fresh(
    stores: Stores, clock: Clock
) -> None:
    first, second, observer = (Inbox(stores, lease_s=LEASE_S) for _ in range(3))
    assert await observer.workers() == 0
    assert await first.renew() == 1
    assert await second.renew() == 2  # both count: one key each, not one shared key
    assert await observer.workers() == 2
    await first.retire()  # only its own heartbeat goes
    assert await observer.workers() == 1
    assert await observer.worker_alive()
    clock.advance(LEASE_S + 1)  # the second stopped renewing (killed: it never retires)
    assert await observer.workers() == 0
    assert await first.renew() == 1


async def test_a_heartbeat_not_renewed_for_long_is_forgotten(stores: Stores, clock: Clock) -> None:
    killed, living = Inbox(stores, lease_s=LEASE_S), Inbox(stores, lease_s=LEASE_S)
    await killed.renew()
    async with stores.unit_of_work("legacy") as uow:  # the single key of earlier versions
        await uow.kv.set("inbox:heartbeat", clock().isoformat())
        await uow.kv.set("inbox:heartbeat:naive", clock().replace(tzinfo=None).isoformat())
    clock.advance(LEASE_S * 11)
    assert await living.renew() == 1
    async with stores.reading() as repos:
        keys = set(await repos.kv.with_prefix("inbox:heartbeat"))
    assert keys == {f"inbox:heartbeat:{living.owner}"}
