"""Webhook mode: the same processing behind a secret token; 200 only after processing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.processing import UpdateProcessor
from bot.runner import SECRET_HEADER, running_bot, webhook_app
from botapi_emulator import BotApiEmulator
from engine.settings import Settings

SECRET = "s3cret-token"


@pytest.fixture
async def webhook(
    settings: Settings, emulator: BotApiEmulator
) -> AsyncIterator[tuple[str, UpdateProcessor]]:
    async with running_bot(settings, token=emulator.token, base_url=emulator.base_url) as proc:
        server = TestServer(webhook_app(proc, SECRET), host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("/telegram")), proc
        finally:
            await server.close()


def update(update_id: int, text: str, message_id: int) -> dict[str, object]:
    user = {"id": 5, "is_bot": False, "first_name": "Web"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": 5, "type": "private", "first_name": "Web"},
            "from": user,
            "text": text,
        },
    }


async def test_webhook_saves_before_answering_and_checks_the_secret(
    webhook: tuple[str, UpdateProcessor], emulator: BotApiEmulator
) -> None:
    url, processor = webhook
    reads = processor.services.engine.reads
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=update(1, "hi", 1)) as refused:
            assert refused.status == 403
        async with http.post(url, json=update(2, "x", 2), headers={SECRET_HEADER: "wrong"}) as bad:
            assert bad.status == 403
        headers = {SECRET_HEADER: SECRET}
        async with http.post(
            url, json=update(3, "the boat key is blue", 3), headers=headers
        ) as ok:
            assert ok.status == 200
            page = await reads.page(space_id=5)  # already saved when 200 arrives
            assert [m.text for m in page.items] == ["the boat key is blue"]
        async with http.post(
            url, json=update(3, "the boat key is blue", 3), headers=headers
        ) as again:
            assert again.status == 200  # a redelivered update changes nothing
        async with http.post(url, data="not json", headers=headers) as junk:
            assert junk.status == 400
    assert (await reads.page(space_id=5)).total == 1
    assert len([m for m in emulator.sent(5) if "Saved" in (m.text or "")]) == 1
