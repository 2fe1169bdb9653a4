"""The per-chat send limiter: exact group windows, 429 pauses that hold one chat only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram.error import ChatMigrated, RetryAfter

from bot.deadline import deadline
from bot.limiter import ChatRateLimiter, SlidingWindow


def test_window_allows_limit_then_waits_until_the_oldest_leaves() -> None:
    window = SlidingWindow(3, 60.0)
    for t in (0.0, 1.0, 2.0):
        assert window.delay(t) == 0
        window._times.append(t)
    assert window.delay(10.0) == 50.0  # the 4th waits for the first to be 60 s old
    assert window.delay(60.0) == 0  # exactly a minute later a slot is free


def test_window_pause_holds_even_with_free_slots() -> None:
    window = SlidingWindow(20, 60.0)
    window.paused_until = 5.0
    assert window.delay(1.0) == 4.0
    assert window.delay(6.0) == 0


async def test_a_429_pauses_its_chat_and_not_the_others() -> None:
    limiter = ChatRateLimiter(0)
    calls: list[str] = []
    refused = {"group": 1}

    async def send(chat: str) -> dict[str, Any]:
        calls.append(chat)
        if chat == "group" and refused["group"]:
            refused["group"] -= 1
            raise RetryAfter(1)
        return {"ok": chat}

    async def request(chat: str, chat_id: int) -> Any:
        return await limiter.process_request(
            send, (chat,), {}, "sendMessage", {"chat_id": chat_id}, None
        )

    group = asyncio.create_task(request("group", -1_000_000_800_001))
    await asyncio.sleep(0.05)  # the group got its 429 and waits
    assert await request("private", 42) == {"ok": "private"}  # not held behind the group
    assert calls == ["group", "private"]
    assert await group == {"ok": "group"}
    assert calls == ["group", "private", "group"]


async def test_groups_keep_an_exact_window_and_the_wait_extends_the_deadline() -> None:
    limiter = ChatRateLimiter(0, group_per_minute=2)
    sent: list[int] = []

    async def send(n: int) -> bool:
        sent.append(n)
        return True

    window = limiter._window(-5)
    window.period_s = 0.3  # a short "minute" for the test
    async with deadline(0.2):  # would expire while waiting for the window, but is extended
        for n in range(4):
            await limiter.process_request(send, (n,), {}, "sendMessage", {"chat_id": -5}, None)
    assert sent == [0, 1, 2, 3]


def test_a_share_of_the_budget_per_worker() -> None:
    limiter = ChatRateLimiter(30)
    assert limiter.per_second == 30
    limiter.share(2)
    assert limiter.per_second == 15
    limiter.share(4)
    assert limiter.per_second == 7  # rounded down: together never over 30
    limiter.share(100)
    assert limiter.per_second == 1
    limiter.share(1)
    assert limiter.per_second == 30
    assert limiter.spare_per_second == 25  # a sixth stays free for replies
    unlimited = ChatRateLimiter(0)
    unlimited.share(3)
    assert unlimited.per_second is None
    assert unlimited.spare_per_second is None


def test_a_spare_slot_leaves_the_reserve_free() -> None:
    window = SlidingWindow(6, 1.0)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        assert window.delay(t, reserve=1) == 0
        window._times.append(t)
    assert window.delay(0.5, reserve=1) == 1.0 - 0.5  # 5 of 6 taken: only the reserve is left
    assert window.delay(0.5) == 0  # a reply may still take it
    assert window.delay(1.05, reserve=1) == 0  # the first left the window


async def test_spare_slots_go_after_the_replies_waiting() -> None:
    window = SlidingWindow(3, 0.2)
    order: list[str] = []

    async def reply(name: str) -> None:
        await window.acquire()
        order.append(name)

    async def broadcast(name: str) -> None:
        await window.take_spare(reserve=1)
        order.append(name)

    await asyncio.gather(broadcast("b1"), broadcast("b2"), broadcast("b3"), reply("r1"))
    assert order == ["b1", "b2", "r1", "b3"]  # b3 would have eaten the reserve r1 took
    order.clear()
    await asyncio.sleep(0.25)  # the window is empty again
    replies = [asyncio.create_task(reply(f"r{n}")) for n in range(2, 7)]
    await asyncio.sleep(0)  # r2..r4 sent, r5 waits for a slot (holding the queue), r6 behind
    await broadcast("b4")
    await asyncio.gather(*replies)
    assert order == ["r2", "r3", "r4", "r5", "r6", "b4"]


async def test_a_send_to_an_upgraded_group_goes_to_the_supergroup_and_says_so() -> None:
    limiter = ChatRateLimiter(0)
    told: list[tuple[int, int]] = []
    limiter.on_migrated = lambda old, new: told.append((old, new))
    sent: list[dict[str, Any]] = []

    async def post(endpoint: str, data: dict[str, Any]) -> dict[str, Any]:
        if data["chat_id"] == -5:
            raise ChatMigrated(-1_000_000_000_005)
        sent.append(dict(data))
        return {"ok": True}

    data = {"chat_id": -5, "text": "hi", "message_thread_id": 3, "reply_parameters": {}}
    await limiter.process_request(post, ("sendMessage", data), {}, "sendMessage", data, None)
    assert sent == [{"chat_id": -1_000_000_000_005, "text": "hi"}]
    assert told == [(-5, -1_000_000_000_005)]
    edit = {"chat_id": -5, "message_id": 9, "text": "x"}
    with pytest.raises(ChatMigrated):  # a message of the old chat cannot be edited elsewhere
        await limiter.process_request(
            post, ("editMessageText", edit), {}, "editMessageText", edit, None
        )
    assert told[-1] == (-5, -1_000_000_000_005)
