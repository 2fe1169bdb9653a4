"""Where a bot message goes: the message it replies to and its thread, under the group limit."""

from __future__ import annotations

from typing import Any

from botapi_emulator.errors import bad_request
from botapi_emulator.params import int_param
from botapi_emulator.state import EmulatorState
from botapi_emulator.threads import PlacementError, place


def outgoing_placement(
    state: EmulatorState, chat_id: int, params: dict[str, Any]
) -> tuple[int | None, int | None]:
    """(reply_to, thread_id) of a new bot message from reply_parameters / reply_to_message_id
    and message_thread_id, checked like Telegram; counts it against the group send limit."""
    reply_to = _reply_to(state, chat_id, params)
    replied = None if reply_to is None else state.message_dict(chat_id, reply_to)
    group = state.chats.group(chat_id)
    try:
        where = place(
            group,
            thread_id=int_param(params, "message_thread_id"),
            reply_to=reply_to,
            replied_thread=None if replied is None else replied.get("message_thread_id"),
        )
    except PlacementError as exc:
        raise bad_request(str(exc)) from None
    if group is not None and not group.implicit and group.kind != "channel":
        state.limits.take(chat_id)
    return reply_to, where.thread_id


def _reply_to(state: EmulatorState, chat_id: int, params: dict[str, Any]) -> int | None:
    reply = params.get("reply_parameters")
    reply = reply if isinstance(reply, dict) else {}
    message_id = reply.get("message_id") or int_param(params, "reply_to_message_id")
    if message_id is None:
        return None
    found = state.user_message(chat_id, int(message_id)) is not None
    if not found and state.sent_message(chat_id, int(message_id)) is None:
        if not reply.get("allow_sending_without_reply"):
            raise bad_request("message to be replied not found")
        return None
    return int(message_id)
