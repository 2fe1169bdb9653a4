"""A save batch with one poison message (both databases, fakes): the neighbours commit.

The group commit runs concurrent saves in one transaction. A message whose vector write
always fails must fail alone: the batch is tried again in halves until it stands alone, and
SQL and the index agree afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engine.app import MemoryEngine
from engine.errors import VectorWriteFailed
from engine.memory import SaveResult
from engine.vector_index import VectorRecord
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.conftest import Reopen
from tests.unit.fault_kit import assert_agree, snapshot

USERS = list(range(301, 313))
POISON = 307


@pytest.fixture
def poisoned(fake_index: InMemoryVectorIndex, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every upsert the fake saw; any upsert holding POISON's vector fails."""
    sizes: list[int] = []
    upsert = fake_index.upsert

    async def failing(records: Sequence[VectorRecord], **kwargs: object) -> None:
        if records:  # not the compensation's restore of nothing
            sizes.append(len(records))
        if any(record.space_id == POISON for record in records):
            raise ConnectionError("this vector never goes in")
        await upsert(records, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fake_index, "upsert", failing)
    return sizes


async def test_one_poison_save_fails_alone_and_the_batch_commits(
    fake_engine: MemoryEngine, poisoned: list[int], reopen_fake: Reopen
) -> None:
    for user in USERS:
        await fake_engine.users.register(user_id=user, username=f"u{user}")
    results = await asyncio.gather(
        *(
            fake_engine.writes.save(
                space_id=user, text=f"note of {user}", chat_id=user, message_id=1
            )
            for user in USERS
        ),
        return_exceptions=True,
    )
    by_user = dict(zip(USERS, results, strict=True))
    assert isinstance(by_user.pop(POISON), VectorWriteFailed)
    assert all(isinstance(r, SaveResult) and r.created for r in by_user.values()), by_user
    assert poisoned[0] == len(USERS)  # they were one batch, then halves of it
    assert len(poisoned) <= 1 + 2 * 4
    for user in USERS:
        await assert_agree(reopen_fake, user)
    assert (await snapshot(fake_engine, POISON)) == ({}, set())
    assert len((await snapshot(fake_engine, USERS[0]))[0]) == 1


async def test_a_redelivered_message_in_a_batch_is_found_and_the_rest_is_saved(
    fake_engine: MemoryEngine, reopen_fake: Reopen
) -> None:
    """The batch's first attempt does not look for earlier saves: the unique index refuses
    the redelivered message at the flush, and the retry finds it (and its neighbours)."""
    for user in USERS[:4]:
        await fake_engine.users.register(user_id=user, username=f"u{user}")
    first = await fake_engine.writes.save(
        space_id=USERS[0], text="said once", chat_id=USERS[0], message_id=7
    )
    again, *others = await asyncio.gather(
        fake_engine.writes.save(
            space_id=USERS[0], text="said once", chat_id=USERS[0], message_id=7
        ),
        *(
            fake_engine.writes.save(space_id=user, text=f"new {user}", chat_id=user, message_id=7)
            for user in USERS[1:4]
        ),
    )
    assert (again.created, again.memory.id) == (False, first.memory.id)
    assert all(result.created for result in others)
    for user in USERS[:4]:
        await assert_agree(reopen_fake, user)
        assert len((await snapshot(fake_engine, user))[0]) == 1
