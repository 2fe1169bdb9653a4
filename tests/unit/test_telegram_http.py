"""The Bot API request over aiohttp (bot/telegram_http.py) against a small local server:
form fields, a multipart upload, PTB's error types for timeouts and refused connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot, InputFile
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.telegram_http import AiohttpRequest
from tests.e2e.loopback import free_port


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    async def echo(request: web.Request) -> web.Response:
        form = await request.post()
        fields = {
            name: (value.filename, value.file.read().decode())
            if isinstance(value, web.FileField)
            else value
            for name, value in form.items()
        }
        fields["_type"] = request.content_type
        return web.json_response({"ok": True, "result": fields})

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    async def get_me(_request: web.Request) -> web.Response:
        me = {"id": 1, "is_bot": True, "first_name": "b", "username": "b_bot"}
        return web.json_response({"ok": True, "result": me})

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/slow", slow)
    app.router.add_post("/bot{token}/echo", echo)
    app.router.add_post("/bot{token}/getMe", get_me)
    running = TestServer(app, host="127.0.0.1")
    await running.start_server()
    yield running
    await running.close()


@pytest.fixture
async def request_() -> AsyncIterator[AiohttpRequest]:
    request = AiohttpRequest(read_timeout=0.3)
    await request.initialize()
    yield request
    await request.shutdown()


async def test_form_fields_go_as_ptb_sends_them(
    server: TestServer, request_: AiohttpRequest
) -> None:
    data = RequestData(
        [RequestParameter("chat_id", 5, None), RequestParameter("text", "héllo & co", None)]
    )
    status, body = await request_.do_request(str(server.make_url("/echo")), "POST", data)
    assert status == 200
    assert json.loads(body)["result"] == {
        "chat_id": "5",
        "text": "héllo & co",
        "_type": "application/x-www-form-urlencoded",
    }


async def test_a_file_goes_as_multipart(server: TestServer, request_: AiohttpRequest) -> None:
    upload = InputFile(b"# my notes\n", filename="notes.md", attach=True)
    data = RequestData(
        [RequestParameter("chat_id", 5, None), RequestParameter.from_input("document", upload)]
    )
    assert data.contains_files
    _, body = await request_.do_request(str(server.make_url("/echo")), "POST", data)
    result = json.loads(body)["result"]
    assert (result["chat_id"], result["_type"]) == ("5", "multipart/form-data")
    assert ["notes.md", "# my notes\n"] in result.values()


async def test_a_slow_server_is_timed_out_and_a_closed_port_is_a_network_error(
    server: TestServer, request_: AiohttpRequest
) -> None:
    with pytest.raises(TimedOut):
        await request_.do_request(str(server.make_url("/slow")), "POST")
    with pytest.raises(NetworkError) as caught:
        await request_.do_request(f"http://127.0.0.1:{free_port()}/x", "POST")
    assert not isinstance(caught.value, TimedOut)


async def test_ptb_decodes_the_answers_through_it(server: TestServer) -> None:
    bot = Bot("1:x", base_url=str(server.make_url("/bot")), request=AiohttpRequest())
    async with bot:  # initialize / shutdown through PTB
        result = await bot.do_api_request("echo", api_kwargs={"a": 1})
    assert result == {"a": "1", "_type": "application/x-www-form-urlencoded"}
