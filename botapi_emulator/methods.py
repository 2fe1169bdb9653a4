"""The Bot API method table: getMe, getUpdates, commands, webhook, files, chats + messaging."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botapi_emulator.command_methods import CommandMethods
from botapi_emulator.errors import ApiError, bad_request
from botapi_emulator.members import MemberMethods
from botapi_emulator.messaging import MessageMethods
from botapi_emulator.model import SentMessage
from botapi_emulator.params import Handler, flag_param, int_param
from botapi_emulator.state import EmulatorState

DOWNLOAD_LIMIT_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files (Bot API docs)
_ACCEPTED = ("setmydescription", "setmyshortdescription", "setmyname", "setchatmenubutton")
_GIFT_TYPES = (
    "unlimited_gifts",
    "limited_gifts",
    "unique_gifts",
    "premium_subscription",
    "gifts_from_channels",
)
_MEMBER_PERMISSIONS = {  # a new group's defaults: members write anything, change nothing
    **dict.fromkeys(("can_send_messages", "can_send_audios", "can_send_documents"), True),
    **dict.fromkeys(("can_send_photos", "can_send_videos", "can_send_video_notes"), True),
    **dict.fromkeys(("can_send_voice_notes", "can_send_polls", "can_send_other_messages"), True),
    **dict.fromkeys(("can_add_web_page_previews", "can_invite_users"), True),
    **dict.fromkeys(("can_change_info", "can_pin_messages", "can_manage_topics"), False),
}


class BotApiMethods:
    """Every emulated Bot API method over an EmulatorState, looked up by case-insensitive name."""

    def __init__(self, state: EmulatorState, on_sent: Callable[[SentMessage], None]) -> None:
        self._state = state
        self._methods: dict[str, Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            **MessageMethods(state, on_sent).handlers(),
            **MemberMethods(state).handlers(),
            **CommandMethods(state).handlers(),
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._webhook_info,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "close": self._true,
            "logout": self._true,
            **dict.fromkeys(_ACCEPTED, self._true),
        }

    def handler(self, method: str) -> Handler | None:
        """The handler of a method name (any case), None if not emulated."""
        return self._methods.get(method.lower())

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._state.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self._state.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        updates = self._state.updates
        offset = int_param(params, "offset")
        limit = min(max(int_param(params, "limit") or 100, 1), 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        if offset is not None:
            updates.confirm(offset)
        while True:
            batch = updates.batch(offset, limit)
            left = deadline - time.monotonic()
            if batch or updates.closed or left <= 0:
                return batch
            await updates.signal.wait(left)

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self._state.webhook_url = ""
        if flag_param(params, "drop_pending_updates"):
            self._state.updates.clear()
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        self._state.webhook_url = str(params.get("url") or "")
        if flag_param(params, "drop_pending_updates"):
            self._state.updates.clear()
        return True

    async def _webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self._state.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": self._state.pending_updates(),
        }

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        upload = self._state.file(file_id)
        if upload is None:
            raise bad_request("invalid file_id")
        if len(upload.data) > DOWNLOAD_LIMIT_BYTES:  # bots download files of up to 20 MB
            raise bad_request("file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id[4:10]}",
            "file_size": len(upload.data),
            "file_path": f"documents/{file_id}/{upload.file_name}",
        }

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int_param(params, "chat_id")
        if chat_id is None or not self._state.has_chat(chat_id):
            raise bad_request("chat not found")
        full = self._state.chat(chat_id) | {"accent_color_id": 0, "max_reaction_count": 11}
        full["accepted_gift_types"] = dict.fromkeys(_GIFT_TYPES, False)
        group = self._state.chats.group(chat_id)
        if group is None:
            return full
        if (error := group.bot_access_error(write=False)) is not None:
            raise error
        if group.kind != "channel":
            full["permissions"] = dict(_MEMBER_PERMISSIONS)
        if group.linked_chat_id is not None:
            full["linked_chat_id"] = group.linked_chat_id
        return full
