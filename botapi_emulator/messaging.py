"""Bot API methods that send, edit and delete messages or answer button presses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botapi_emulator.errors import bad_request, not_modified
from botapi_emulator.formatting import MAX_CAPTION, MAX_TEXT, format_text
from botapi_emulator.markup import check_markup
from botapi_emulator.model import SentMessage, Upload
from botapi_emulator.outgoing import outgoing_placement
from botapi_emulator.params import Handler, flag_param, int_param
from botapi_emulator.state import EmulatorState


class MessageMethods:
    """Message methods over an EmulatorState; every new bot message goes through `on_sent`."""

    def __init__(self, state: EmulatorState, on_sent: Callable[[SentMessage], None]) -> None:
        self._state = state
        self._on_sent = on_sent

    def handlers(self) -> dict[str, Handler]:
        """The methods by lower-cased name."""
        return {
            "sendmessage": self.send_message,
            "editmessagetext": self.edit_text,
            "editmessagereplymarkup": self.edit_markup,
            "answercallbackquery": self.answer_callback,
            "senddocument": self.send_document,
            "sendchataction": self.chat_action,
            "deletemessage": self.delete_message,
        }

    async def send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """sendMessage."""
        chat_id = self._chat_id(params)
        text = str(params.get("text") or "")
        mode = params.get("parse_mode") or None
        plain, entities = format_text(text, mode, params.get("entities"), limit=MAX_TEXT)
        markup = check_markup(params.get("reply_markup"))
        reply_to, thread_id = outgoing_placement(self._state, chat_id, params)
        sent = SentMessage(
            chat_id,
            self._state.next_message_id(chat_id),
            text,
            mode,
            markup,
            date=int(time.time()),
            plain=plain,
            entities=entities,
            reply_to=reply_to,
            thread_id=thread_id,
        )
        self._on_sent(sent)
        return self._state.bot_message(sent)

    async def edit_text(self, params: dict[str, Any]) -> dict[str, Any]:
        """editMessageText."""
        sent = self._find(params, "message to edit not found")
        if sent.document is not None:
            raise bad_request("there is no text in the message to edit")
        text = str(params.get("text") or "")
        mode = params.get("parse_mode") or None
        plain, entities = format_text(text, mode, params.get("entities"), limit=MAX_TEXT)
        markup = check_markup(params.get("reply_markup"))
        if (plain, entities, markup) == (sent.plain, sent.entities, sent.reply_markup):
            raise not_modified()
        sent.text, sent.parse_mode, sent.plain, sent.entities = text, mode, plain, entities
        return self._edited(sent, markup)

    async def edit_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        """editMessageReplyMarkup."""
        sent = self._find(params, "message to edit not found")
        markup = check_markup(params.get("reply_markup"))
        if markup == sent.reply_markup:
            raise not_modified()
        return self._edited(sent, markup)

    async def answer_callback(self, params: dict[str, Any]) -> bool:
        """answerCallbackQuery: once per query, noted in callback_answers."""
        query_id = str(params.get("callback_query_id") or "")
        if not self._state.callbacks.close(query_id):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._state.callback_answers.append(
            {
                "callback_query_id": query_id,
                "text": params.get("text"),
                "show_alert": flag_param(params, "show_alert"),
            }
        )
        return True

    async def send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        """sendDocument: a new upload or the file_id of a stored file."""
        chat_id = self._chat_id(params)
        doc = params.get("document")
        if isinstance(doc, str) and (stored := self._state.file(doc)) is not None:
            file_id, upload = doc, stored
        elif isinstance(doc, Upload):
            file_id, upload = self._state.store_file(doc)["file_id"], doc
        else:
            raise bad_request("there is no document in the request")
        caption = params.get("caption") or None
        mode = params.get("parse_mode") or None
        plain: str | None = None
        entities: list[dict[str, Any]] = []
        if caption is not None:
            plain, entities = format_text(
                caption, mode, params.get("caption_entities"), limit=MAX_CAPTION, what="caption"
            )
        markup = check_markup(params.get("reply_markup"))
        reply_to, thread_id = outgoing_placement(self._state, chat_id, params)
        sent = SentMessage(
            chat_id,
            self._state.next_message_id(chat_id),
            None,
            mode,
            markup,
            upload.data,
            upload.file_name,
            caption,
            date=int(time.time()),
            plain=plain,
            entities=entities,
            reply_to=reply_to,
            file_id=file_id,
            thread_id=thread_id,
        )
        self._on_sent(sent)
        return self._state.bot_message(sent)

    async def chat_action(self, params: dict[str, Any]) -> bool:
        """sendChatAction: only checks the chat."""
        self._chat_id(params)
        return True

    async def delete_message(self, params: dict[str, Any]) -> bool:
        """deleteMessage: a user message is forgotten (in a group only by an admin bot), a bot
        message marked deleted."""
        chat_id = self._chat_id(params)
        message_id = int_param(params, "message_id") or 0
        if self._state.user_message(chat_id, message_id) is not None:
            group = self._state.chats.group(chat_id)
            if group is not None and not group.implicit and group.bot_status != "administrator":
                raise bad_request("message can't be deleted")
            return self._state.delete_user_message(chat_id, message_id)
        self._find(params, "message to delete not found").deleted = True
        self._state.message_changed()
        return True

    def _edited(self, sent: SentMessage, markup: dict[str, Any] | None) -> dict[str, Any]:
        sent.reply_markup, sent.edits, sent.edit_date = markup, sent.edits + 1, int(time.time())
        self._state.message_changed()
        return self._state.bot_message(sent)

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = int_param(params, "chat_id")
        if chat_id is None:
            raise bad_request("chat not found")
        self._state.faults.check_chat(chat_id)
        group = self._state.chats.group(chat_id)
        if group is not None and (error := group.bot_access_error(write=True)) is not None:
            raise error
        return chat_id

    def _find(self, params: dict[str, Any], missing: str) -> SentMessage:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        chat_id = self._chat_id(params)
        sent = self._state.sent_message(chat_id, int_param(params, "message_id") or 0)
        if sent is None or sent.deleted:
            raise bad_request(missing)
        return sent
