"""Bot API methods about chat members: getChatMember, getChatAdministrators, getChatMemberCount."""

from __future__ import annotations

from typing import Any

from botapi_emulator.errors import bad_request
from botapi_emulator.groups import Group
from botapi_emulator.model import GROUP_ANONYMOUS_BOT
from botapi_emulator.params import Handler, int_param
from botapi_emulator.state import EmulatorState


class MemberMethods:
    """ChatMember answers from the chats registry, shaped like the Bot API server's."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def handlers(self) -> dict[str, Handler]:
        """The methods by lower-cased name."""
        return {
            "getchatmember": self.get_member,
            "getchatadministrators": self.get_administrators,
            "getchatmembercount": self.member_count,
            "getchatmemberscount": self.member_count,
        }

    async def get_member(self, params: dict[str, Any]) -> dict[str, Any]:
        """getChatMember."""
        chat_id = self._chat_id(params)
        user_id = int_param(params, "user_id")
        if user_id is None or user_id == 0:
            raise bad_request("invalid user_id specified")
        bot_id = int(self._state.bot_user["id"])
        group = self._group(chat_id)
        if group is None:  # a private chat: its user and the bot are its members
            status = "member" if user_id in (chat_id, bot_id) else "left"
            return self._member(user_id, status, group)
        if user_id == bot_id:
            return self._member(user_id, group.bot_status, group)
        if user_id == GROUP_ANONYMOUS_BOT["id"] and group.kind != "channel":
            return _administrator(dict(GROUP_ANONYMOUS_BOT), group, anonymous=True, title=None)
        return self._member(user_id, group.status(user_id), group)

    async def get_administrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """getChatAdministrators: the creator and administrators, no bots but this one."""
        group = self._group(self._chat_id(params))
        if group is None:
            raise bad_request("there are no administrators in the private chat")
        found = []
        if group.creator is not None:
            found.append(self._member(group.creator, "creator", group))
        admins = [uid for uid in group.admins if uid != group.creator]
        if group.bot_status == "administrator":
            admins.append(int(self._state.bot_user["id"]))
        return found + [self._member(uid, "administrator", group) for uid in admins]

    async def member_count(self, params: dict[str, Any]) -> int:
        """getChatMemberCount."""
        chat_id = self._chat_id(params)
        group = self._group(chat_id)
        if group is None:
            return 1 + (chat_id != int(self._state.bot_user["id"]))
        return group.member_count()

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = int_param(params, "chat_id")
        if chat_id is None or not self._state.has_chat(chat_id):
            raise bad_request("chat not found")
        return chat_id

    def _group(self, chat_id: int) -> Group | None:
        group = self._state.chats.group(chat_id)
        if group is not None and (error := group.bot_access_error(write=False)) is not None:
            raise error
        return group

    def _member(self, user_id: int, status: str, group: Group | None) -> dict[str, Any]:
        is_bot = user_id == self._state.bot_user["id"]
        if not is_bot and not self._state.knows_user(user_id):
            raise bad_request("user not found")
        user = self._state.bot_user if is_bot else self._state.user(user_id)
        if group is not None and status in ("creator", "administrator"):
            admin = group.admins.get(user_id)
            anonymous, title = (admin.anonymous, admin.custom_title) if admin else (False, None)
            if status == "administrator":
                return _administrator(user, group, anonymous=anonymous, title=title)
            return {"user": user, "status": "creator", "is_anonymous": anonymous} | (
                {"custom_title": title} if title else {}
            )
        return {"user": user, "status": status} | ({"until_date": 0} if status == "kicked" else {})


def _administrator(
    user: dict[str, Any], group: Group, *, anonymous: bool, title: str | None
) -> dict[str, Any]:
    """A ChatMemberAdministrator with the rights a usual (not bot-promoted) admin has."""
    member: dict[str, Any] = {"user": user, "status": "administrator", "can_be_edited": False}
    member |= {
        "can_manage_chat": True,
        "can_change_info": True,
        "can_delete_messages": True,
        "can_invite_users": True,
        "can_restrict_members": True,
        "can_promote_members": False,
        "can_manage_video_chats": True,
        "can_post_stories": False,
        "can_edit_stories": False,
        "can_delete_stories": False,
        "is_anonymous": anonymous,
    }
    if group.kind == "channel":
        member |= {"can_post_messages": True, "can_edit_messages": True}
    else:
        member |= {"can_pin_messages": True}
    if group.kind == "supergroup":
        member["can_manage_topics"] = group.forum
    member["can_manage_voice_chats"] = True  # the pre-6.0 name the server still sends
    return member | ({"custom_title": title} if title else {})
