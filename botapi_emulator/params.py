"""Bot API request parameters: reading query/JSON/multipart bodies and typed access."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from botapi_emulator.errors import bad_request
from botapi_emulator.model import Upload

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
_JSON_KEYS = (
    "reply_markup",
    "entities",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
    "commands",
    "scope",
    "allowed_updates",
)


async def read_params(request: web.Request) -> dict[str, Any]:
    """Query string and body (JSON, form or multipart) merged; JSON-typed fields decoded."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
    elif request.can_read_body:
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                params[key] = Upload(value.filename, data, value.content_type)
            else:
                params[key] = value.decode() if isinstance(value, bytes) else value
    for key in _JSON_KEYS:
        if isinstance(params.get(key), str):
            with contextlib.suppress(ValueError):  # else left a string: the method says 400
                params[key] = json.loads(params[key])
    return params


def int_param(params: dict[str, Any], key: str) -> int | None:
    """An integer parameter (None if absent or empty); 400 if not a number."""
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {key} specified") from None


def flag_param(params: dict[str, Any], key: str) -> bool:
    """A boolean parameter, however it was encoded."""
    return params.get(key) in (True, "true", "True", "1", 1)


def loggable(value: Any) -> Any:
    """A parameter as kept in `calls`: uploads as name and size, not bytes."""
    if isinstance(value, Upload):
        return {"file_name": value.file_name, "size": len(value.data)}
    return value
