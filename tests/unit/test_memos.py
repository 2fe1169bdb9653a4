"""The recall and /list memos, written behind (issue 31: a recall costs no write transaction on
its reply path), and forgotten with /forget_all even when noted but not yet written."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.conversations import purging_chat_traces
from bot.memos import Memos, Shown, memo_key
from engine.app import MemoryEngine
from storage.metrics import REGISTRY
from storage.repositories import KeyValueRepository

CHAT, OTHER_CHAT, USER = 101, 202, 101


def commits() -> float:
    return REGISTRY.get_sample_value("memorybot_sql_commits_total") or 0.0


def hold_writes(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every kv write inside its transaction: (set once a write is made, set to go on)."""
    writing, go_on = asyncio.Event(), asyncio.Event()
    real_set = KeyValueRepository.set

    async def held_set(self: KeyValueRepository, key: str, value: str) -> None:
        await real_set(self, key, value)
        writing.set()
        await go_on.wait()

    monkeypatch.setattr(KeyValueRepository, "set", held_set)
    return writing, go_on


@pytest.fixture
async def memos(fake_engine: MemoryEngine) -> Memos:
    return Memos(fake_engine.stores, flush_s=60)  # flushed by hand here


async def stored(engine: MemoryEngine, key: str) -> str | None:
    async with engine.stores.reading() as repos:
        return await repos.kv.get(key)


async def test_a_memo_is_read_at_once_and_written_with_the_others_in_one_transaction(
    fake_engine: MemoryEngine, memos: Memos
) -> None:
    before = commits()
    memos.remember(CHAT, USER, 5, "where is my passport")
    memos.remember(CHAT, USER, 6, "#work", Shown.LIST)
    memos.remember(OTHER_CHAT, USER, 7, "bins")
    assert commits() == before, "remembering writes nothing"
    assert await memos.query_for(CHAT, USER, 5) == "where is my passport"
    assert await memos.query_for(CHAT, USER, 6, Shown.LIST) == "#work"
    assert await memos.query_for(CHAT, USER, 4) is None, "a newer recall replaced it"
    await memos.flush()
    assert commits() == before + 1
    assert await stored(fake_engine, memo_key(OTHER_CHAT, USER)) is not None
    fresh = Memos(fake_engine.stores)  # another process reads what was written
    assert await fresh.query_for(CHAT, USER, 5) == "where is my passport"
    assert await fresh.query_for(CHAT, USER, 6, Shown.LIST) == "#work"


async def test_forget_all_takes_noted_and_stored_memos_of_its_chat_only(
    fake_engine: MemoryEngine, memos: Memos, alice: int
) -> None:
    memos.remember(CHAT, USER, 5, "stored query")
    await memos.flush()
    memos.remember(CHAT, USER, 6, "noted query", Shown.LIST)
    memos.remember(OTHER_CHAT, USER, 7, "another chat's query")
    await fake_engine.writes.forget_all(space_id=CHAT, also=purging_chat_traces(CHAT, memos))
    await memos.flush()
    assert await stored(fake_engine, memo_key(CHAT, USER)) is None
    assert await stored(fake_engine, memo_key(CHAT, USER, Shown.LIST)) is None
    assert await memos.query_for(CHAT, USER, 6, Shown.LIST) is None
    assert await memos.query_for(OTHER_CHAT, USER, 7) == "another chat's query"


async def test_a_failed_flush_is_logged_and_its_memos_wait_for_the_next(
    fake_engine: MemoryEngine,
    memos: Memos,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = memos._stores.unit_of_work

    def down(op: str) -> object:
        raise ConnectionResetError("the database went away")

    monkeypatch.setattr(memos._stores, "unit_of_work", down)
    memos.remember(CHAT, USER, 5, "a query kept for later")
    with caplog.at_level(logging.WARNING, logger="memorybot.bot"):
        assert not await memos.flush()
    assert "memos not kept yet: ConnectionResetError" in caplog.text
    assert "a query kept for later" not in caplog.text
    assert await memos.query_for(CHAT, USER, 5) == "a query kept for later"
    monkeypatch.setattr(memos._stores, "unit_of_work", real)
    assert await memos.flush()
    assert await stored(fake_engine, memo_key(CHAT, USER)) is not None


async def test_a_memo_stays_readable_while_its_flush_is_in_flight(
    memos: Memos, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the full suite: the flush took the memos out of the process before its
    commit, and a press in between found neither (its button said "expired")."""
    writing, go_on = hold_writes(monkeypatch)
    memos.remember(CHAT, USER, 5, "#work")
    flushing = asyncio.create_task(memos.flush())
    await asyncio.wait_for(writing.wait(), 10)
    assert await memos.query_for(CHAT, USER, 5) == "#work"
    memos.remember(CHAT, USER, 6, "#home")  # a newer memo noted during the flush
    go_on.set()
    assert await asyncio.wait_for(flushing, 10)
    assert await memos.query_for(CHAT, USER, 6) == "#home", "the newer one is still noted"
    assert await memos.query_for(CHAT, USER, 5) is None


async def test_memos_noted_at_shutdown_are_written(fake_engine: MemoryEngine) -> None:
    memos = Memos(fake_engine.stores)
    memos.remember(CHAT, USER, 5, "last query")
    await memos.aclose()
    assert await stored(fake_engine, memo_key(CHAT, USER)) is not None


async def test_a_forget_all_during_a_flush_leaves_no_memo_of_its_chat(
    fake_engine: MemoryEngine, memos: Memos, monkeypatch: pytest.MonkeyPatch, alice: int
) -> None:
    """The flush is held inside its transaction (its memo written, not committed) while
    /forget_all runs: the purge waits for it, so the memo is gone afterwards either way."""
    writing, go_on = hold_writes(monkeypatch)
    memos.remember(CHAT, USER, 5, "a query forget_all must take")
    flushing = asyncio.create_task(memos.flush())
    await asyncio.wait_for(writing.wait(), 10)
    forgetting = asyncio.create_task(
        fake_engine.writes.forget_all(space_id=CHAT, also=purging_chat_traces(CHAT, memos))
    )
    await asyncio.sleep(0.2)  # the purge now waits (for the lock, or SQLite's writer)
    assert not forgetting.done()
    go_on.set()
    await asyncio.wait_for(asyncio.gather(flushing, forgetting), 10)
    assert await stored(fake_engine, memo_key(CHAT, USER)) is None
