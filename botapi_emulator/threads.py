"""Where a new message lands: its forum topic or supergroup reply thread, and what it replies to.

Telegram's rules, as the Bot API server applies them:

* threads exist in supergroups only; in private chats and basic groups there are none;
* in a forum, a message is in a topic (`message_thread_id` + `is_topic_message`) or in General
  (neither). A reply lands in the topic of the message it replies to. A message in a topic that
  replies to nothing carries the topic's creation message as `reply_to_message`;
* in a supergroup without topics, a reply carries `message_thread_id` = the id of the first message
  of its reply chain, without `is_topic_message`; that id cannot be used to send into a "thread".
"""

from __future__ import annotations

from dataclasses import dataclass

from botapi_emulator.groups import Group


@dataclass(frozen=True)
class Placement:
    """A message's thread and the message it shows as reply_to_message."""

    thread_id: int | None = None
    is_topic: bool = False
    shown_reply: int | None = None  # the replied message, or in a topic its creation message


class PlacementError(ValueError):
    """A thread or reply that cannot be; the text is the Bot API's description (no prefix)."""


def place(
    group: Group | None,
    *,
    thread_id: int | None,
    reply_to: int | None,
    replied_thread: int | None,
) -> Placement:
    """Place a message sent with this thread id and reply; `replied_thread`: the replied one's."""
    if group is None or group.kind != "supergroup":
        return Placement(shown_reply=reply_to)
    if group.forum:
        if reply_to is not None:
            topic = replied_thread if replied_thread in group.topics else None
            if thread_id is not None and thread_id != topic:
                raise PlacementError("message to be replied not found")
            return Placement(topic, topic is not None, reply_to)
        if thread_id is not None and thread_id not in group.topics:
            raise PlacementError("message thread not found")
        return Placement(thread_id, thread_id is not None, thread_id)
    if thread_id is not None:
        raise PlacementError("message thread not found")
    if reply_to is None:
        return Placement()
    return Placement(replied_thread or reply_to, False, reply_to)
