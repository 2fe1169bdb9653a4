"""Webhook mode: an update is answered 200 once it is in the inbox, and processed from there;
the secret is checked (also when it is not ASCII); bodies that are no update are parked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.ledger import UpdateLedger
from bot.runner import BotRuntime, running_bot
from bot.webhook import SECRET_HEADER, webhook_app
from botapi_emulator import BotApiEmulator
from engine.inbox import Inbox
from engine.settings import Settings

SECRET = "s3cret-token"
HEADERS = {SECRET_HEADER: SECRET}


@pytest.fixture
async def webhook(
    settings: Settings, emulator: BotApiEmulator
) -> AsyncIterator[tuple[str, BotRuntime]]:
    async with running_bot(settings, token=emulator.token, base_url=emulator.base_url) as runtime:
        server = TestServer(webhook_app(runtime, SECRET), host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("/telegram")), runtime
        finally:
            await server.close()


def update(update_id: int, text: str, message_id: int, chat: int = 5) -> dict[str, object]:
    user = {"id": chat, "is_bot": False, "first_name": "Web"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private", "first_name": "Web"},
            "from": user,
            "text": text,
        },
    }


async def test_webhook_stores_before_answering_and_checks_the_secret(
    webhook: tuple[str, BotRuntime], emulator: BotApiEmulator
) -> None:
    url, runtime = webhook
    reads = runtime.engine.reads
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=update(1, "hi", 1)) as refused:
            assert refused.status == 403
        async with http.post(url, json=update(2, "x", 2), headers={SECRET_HEADER: "wrong"}) as bad:
            assert bad.status == 403
        async with http.post(
            url, json=update(2, "x", 2), headers={SECRET_HEADER: "sécret-tökén"}
        ) as accented:
            assert accented.status == 403
        async with http.post(
            url, json=update(3, "the boat key is blue", 3), headers=HEADERS
        ) as ok:
            assert ok.status == 200
            assert 3 in await Inbox(runtime.engine.stores).statuses([3])  # stored first
        await emulator.wait_for(chat_id=5, count=1)
        async with http.post(
            url, json=update(3, "the boat key is blue", 3), headers=HEADERS
        ) as again:
            assert again.status == 200  # a redelivered update changes nothing
        async with http.post(url, data="not json", headers=HEADERS) as junk:
            assert junk.status == 200  # parked: Telegram must not retry it forever
    await asyncio.sleep(0.5)
    assert [m.text for m in (await reads.page(space_id=5)).items] == ["the boat key is blue"]
    assert len([m for m in emulator.sent(5) if "Saved" in (m.text or "")]) == 1
    assert await Inbox(runtime.engine.stores).statuses([1, 2]) == {}


async def test_webhook_parks_an_update_the_library_cannot_parse(
    webhook: tuple[str, BotRuntime], emulator: BotApiEmulator
) -> None:
    url, runtime = webhook
    broken = {"update_id": 40, "message": {"message_id": "not a number", "chat": "?"}}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=broken, headers=HEADERS) as answer:
            assert answer.status == 200
        async with http.post(url, json=update(41, "/start", 41, chat=6), headers=HEADERS) as ok:
            assert ok.status == 200
    await emulator.wait_for(chat_id=6, count=1)
    ledger = UpdateLedger(runtime.engine.stores)
    for _ in range(100):
        if await ledger.dead_letters():
            break
        await asyncio.sleep(0.05)
    [letter] = await ledger.dead_letters()
    assert letter.update_id == 40
    assert "unparseable" in letter.error.lower() or letter.error


async def test_webhook_keeps_one_chats_order_across_concurrent_requests(
    webhook: tuple[str, BotRuntime], emulator: BotApiEmulator
) -> None:
    url, runtime = webhook
    texts = [f"note number {i}" for i in range(12)]
    async with aiohttp.ClientSession() as http:

        async def post(i: int) -> int:
            async with http.post(
                url, json=update(100 + i, texts[i], 100 + i), headers=HEADERS
            ) as r:
                return r.status

        for i in range(12):  # sent in order, each answered once stored
            assert await post(i) == 200
    await emulator.wait_for(chat_id=5, count=12)
    page = await runtime.engine.reads.page(space_id=5, limit=50)
    by_time = sorted(page.items, key=lambda m: m.created_at)
    assert [m.text for m in by_time] == texts
