"""The inbox's rules for a store outage (both databases), found by tests/e2e/test_outages.py.

* A chat is told "saving is delayed" once per wait, not once per message: messages it sends
  while it still waits are covered by the notice it got, whoever sent it (the worker, or the
  intake holding a batch while SQL was down).
* Updates a lane could not hand back (SQL was down) are handed back with the next claim; the
  heartbeat renews our leases, so they would otherwise never be claimed again.
"""

from __future__ import annotations

from engine.inbox import Inbox
from engine.stores import Stores
from tests.unit.inbox_kit import Clock, received

A, B = 2_001, 2_002


async def test_a_chat_is_told_once_per_wait_however_many_messages_it_sends(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A)])
    clock.advance(10)
    assert await inbox.waiting_chats(older_than_s=5) == [A]
    for update_id in (2, 3):  # A keeps writing while the store is still down
        await inbox.store([received(update_id, A)])
        clock.advance(10)
        assert await inbox.waiting_chats(older_than_s=5) == []

    # The store is back: A's updates are finished; a later outage is a new wait.
    await inbox.finish([1, 2, 3])
    inbox.wait_over(A)
    await inbox.store([received(4, A)])
    clock.advance(10)
    assert await inbox.waiting_chats(older_than_s=5) == [A]


async def test_chats_the_intake_told_are_not_told_again_by_the_worker(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A, notified=True), received(2, B)])
    clock.advance(10)
    assert await inbox.waiting_chats(older_than_s=5) == [B]


async def test_a_process_tells_a_chat_once_even_when_sql_cannot_record_it(
    stores: Stores, clock: Clock
) -> None:
    """The intake told A while SQL was down (nothing recorded); the worker then finds A's
    older update waiting: A is not told twice."""
    inbox = Inbox(stores)
    await inbox.store([received(1, A), received(2, B)])
    clock.advance(10)
    assert inbox.tell_once([A]) == [A]  # the intake, holding a batch
    assert await inbox.waiting_chats(older_than_s=5) == [B]
    assert inbox.tell_once([A, B]) == []


async def test_updates_not_handed_back_are_released_with_the_next_claim(
    stores: Stores, clock: Clock
) -> None:
    inbox = Inbox(stores)
    await inbox.store([received(1, A), received(2, A), received(3, B)])
    claimed = await inbox.finish_and_claim([], chats=8)
    assert sorted(c.update_id for c in claimed) == [1, 2, 3]
    await inbox.renew()  # the heartbeat: our leases never run out
    clock.advance(3600)
    await inbox.renew()
    assert await inbox.finish_and_claim([3], chats=8) == []  # A is still leased to us

    again = await inbox.finish_and_claim([], chats=8, release=[1, 2])
    assert [c.update_id for c in again] == [1, 2]
