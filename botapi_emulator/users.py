"""The test side: user activity (messages, media, edits, button presses) queued as updates."""

from __future__ import annotations

import mimetypes
import time
from typing import Any

from botapi_emulator.compose import MessageComposer
from botapi_emulator.formatting import command_entities
from botapi_emulator.markup import button_data
from botapi_emulator.model import Upload, caption_dict, private_chat_dict, user_dict
from botapi_emulator.state import EmulatorState


class UserActivity:
    """Injects what users do into an EmulatorState, as the updates Telegram would send."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._composer = MessageComposer(state)

    def user_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> int:
        """Queue a text message from a user; returns its message_id.

        chat_id: the user's private chat by default, else a group the user is in (an id never
        registered with create_group() is an open group, as before groups were modelled).
        reply_to: an earlier message of that chat; thread_id: a forum topic.
        """
        found = command_entities(text) if entities is None else entities
        extra: dict[str, Any] = {"text": text, **({"entities": found} if found else {})}
        return self._user_update(
            user_id, chat_id, extra, first_name, username, reply_to=reply_to, thread_id=thread_id
        )

    def user_photo(
        self, user_id: int, caption: str | None = None, *, chat_id: int | None = None
    ) -> int:
        """Queue a photo message (three sizes, optional caption)."""
        sizes = []
        for side in (90, 320, 1280):
            ref = self._state.store_file(
                Upload(f"photo_{side}.jpg", b"\xff\xd8\xff" * side, "image/jpeg")
            )
            sizes.append({**ref, "width": side, "height": side * 3 // 4})
        return self._user_update(user_id, chat_id, {"photo": sizes, **caption_dict(caption)})

    def user_document(
        self,
        user_id: int,
        file_name: str,
        caption: str | None = None,
        *,
        content: bytes = b"hello\n",
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Queue a document message; its bytes can be fetched with getFile + the file URL.

        reply_to: an earlier message of that chat (e.g. the bot's prompt in a group).
        """
        mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        ref = self._state.store_file(Upload(file_name, content, mime))
        document = {**ref, "file_name": file_name, "mime_type": mime}
        content_dict = {"document": document, **caption_dict(caption)}
        return self._user_update(user_id, chat_id, content_dict, reply_to=reply_to)

    def user_sticker(self, user_id: int, *, chat_id: int | None = None) -> int:
        """Queue a sticker message."""
        ref = self._state.store_file(Upload("sticker.webp", b"RIFF....WEBP", "image/webp"))
        sticker = {**ref, "type": "regular", "width": 512, "height": 512, "emoji": "👍"}
        sticker |= {"is_animated": False, "is_video": False}
        return self._user_update(user_id, chat_id, {"sticker": sticker})

    def user_edit(
        self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None
    ) -> None:
        """Queue an edited_message update for an earlier user text message."""
        chat = user_id if chat_id is None else chat_id
        original = self._state.user_message(chat, message_id)
        if original is None:
            raise KeyError(f"no user message {message_id} in chat {chat}")
        if original.get("from", {}).get("id") != user_id:
            raise ValueError(f"message {message_id} in chat {chat} is not user {user_id}'s")
        edited = {k: v for k, v in original.items() if k != "entities"}
        edited |= {"text": new_text, "edit_date": int(time.time())}
        if found := command_entities(new_text):
            edited["entities"] = found
        self._state.put_user_message(chat, edited)
        self._state.updates.push({"edited_message": edited})

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        chat_id: int | None = None,
        strict: bool = True,
    ) -> str:
        """Queue a callback_query on a bot message; strict: the button must be on it now."""
        chat = user_id if chat_id is None else chat_id
        sent = self._state.sent_message(chat, message_id)
        if sent is None or sent.deleted:
            raise KeyError(f"the bot has no message {message_id} in chat {chat}")
        if strict and callback_data not in (buttons := button_data(sent.reply_markup)):
            raise ValueError(f"no button {callback_data!r} on message {message_id}: {buttons}")
        query_id = self._state.callbacks.new_id()
        self._state.updates.push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._state.user(user_id),
                    "message": self._state.bot_message(sent),
                    "chat_instance": str(abs(chat) * 31 + 7),
                    "data": callback_data,
                }
            }
        )
        return query_id

    def raw_update(self, update: dict[str, Any]) -> int:
        """Queue any JSON as an update (update_id assigned if missing); returns the update_id."""
        return self._state.updates.push(dict(update))

    def _user_update(
        self,
        user_id: int,
        chat_id: int | None,
        content: dict[str, Any],
        first_name: str = "Test",
        username: str | None = None,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> int:
        chat_id = user_id if chat_id is None else chat_id
        user = user_dict(user_id, first_name, username)
        if chat_id == user_id:
            self._state.add_chat(private_chat_dict(user_id, first_name, username))
        else:
            self._state.chats.admit(chat_id, user_id)
        self._state.add_user(user)
        message = self._composer.compose(
            chat_id, {"from": user}, content, reply_to=reply_to, thread_id=thread_id
        )
        self._state.updates.push({"message": message})
        return int(message["message_id"])
