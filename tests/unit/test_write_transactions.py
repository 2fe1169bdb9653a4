"""Issue 31 (e): every command costs at most one write transaction on its way to the answer,
and a read (recall, list, tags, reminders, help, stats...) none.

Counted from the transaction log (`memorybot.tx`, one line per outcome) while one update runs
through the real Application (see `tests.unit.handler_kit`); the per-user quota counts are
written behind for all users at once and are not the update's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from bot.keyboards import Button
from tests.unit.handler_kit import (
    ADMIN,
    GROUP,
    USER,
    Kit,
    answered,
    kit,
    settings,
    update_writes,
)

__all__ = ["kit", "settings"]  # fixtures
NEWCOMER = 71_010  # never seen by the bot before the measured update

Setup = Callable[[Kit], Awaitable[Callable[[], object]]]


@dataclass(frozen=True)
class Case:
    """An update (made by `setup`, after whatever it needs ran uncounted) and the write
    transactions it may commit."""

    name: str
    setup: Setup
    writes: int


def say(text: str, user: int = USER, *, chat: int | None = None) -> Setup:
    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(user, "/start")))
        return lambda: kit.emulator.user_message(user, text, chat_id=chat)

    return setup


def after(first: str, then: str, user: int = USER) -> Setup:
    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(user, "/start")))
        answered(await kit.run(kit.say(user, first)))
        return kit.say(user, then)

    return setup


def press(*firsts: str, code: Button, user: int = USER) -> Setup:
    """The first button with `code` under the bot's answer to the last of `firsts`."""

    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(user, "/start")))
        await kit.engine.writes.save_many(
            space_id=user, texts=[f"spare part number {n} is in box {n}" for n in range(12)]
        )
        for first in firsts:
            answered(await kit.run(kit.say(user, first)))
        shown = kit.emulator.sent(user)[-1]
        rows = (shown.reply_markup or {}).get("inline_keyboard", [])
        data = [b["callback_data"] for row in rows for b in row if "callback_data" in b]
        [chosen, *_] = [d for d in data if d.split(":")[0] == code.value]
        return lambda: kit.emulator.press_button(user, shown.message_id, chosen, chat_id=user)

    return setup


def newcomer(text: str, *, chat: int | None = None) -> Setup:
    async def setup(kit: Kit) -> Callable[[], object]:
        if chat is not None:
            kit.emulator.add_member(chat, NEWCOMER)
        return lambda: kit.emulator.user_message(NEWCOMER, text, chat_id=chat, username="newcomer")

    return setup


def on_saved(command: str) -> Setup:
    """`command` followed by the id of a memory just saved."""

    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(USER, "/start")))
        saved = await kit.engine.writes.save(space_id=USER, text="the gas meter is in the hall")
        return kit.say(USER, command.format(saved.memory.short_id))

    return setup


def edited() -> Setup:
    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(USER, "/start")))
        sent = kit.emulator.user_message(USER, "the gas meter is in the hall")
        await kit.run(lambda: None)
        return lambda: kit.emulator.user_edit(USER, sent, "the gas meter is in the cellar")

    return setup


def imported() -> Setup:
    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(USER, "/start")))
        content = json.dumps({"memories": [{"text": f"note {n}"} for n in range(5)]}).encode()
        return lambda: kit.emulator.user_document(USER, "m.json", "/import", content=content)

    return setup


def renamed(text: str) -> Setup:
    async def setup(kit: Kit) -> Callable[[], object]:
        answered(await kit.run(kit.say(USER, "/start")))
        return lambda: kit.emulator.user_message(USER, text, username="renamed_user")

    return setup


CASES = [
    Case("recall", after("/save the spare key is under the mat", "/recall spare key"), 0),
    Case("search", after("/save the spare key is under the mat", "/search spare key"), 0),
    Case("list", after("/save the spare key is under the mat", "/list"), 0),
    Case("tags", after("/save #home the spare key", "/tags"), 0),
    Case("reminders", after("/remind in 2 hours call mom", "/reminders"), 0),
    Case("help", say("/help"), 0),
    Case("start again", say("/start"), 0),
    Case("export", after("/save the spare key is under the mat", "/export"), 0),
    Case("stats", say("/stats", ADMIN), 0),
    Case("audit", say("/audit", ADMIN), 0),
    Case("dlq", say("/dlq", ADMIN), 0),
    Case("broadcast status", say("/broadcast_status", ADMIN), 0),
    Case("unknown command", say("/nonsense"), 0),
    Case("save", say("/save the gas meter is in the hall"), 1),
    Case("plain message", say("the gas meter is in the hall"), 1),
    Case("save in a group", say("/save team lunch on friday", chat=GROUP), 1),
    Case("save prompt", say("/save"), 1),
    Case("cancel a prompt", after("/save", "/cancel"), 1),
    Case("remind", after("/remind in 2 hours call mom", "/remind in 3 hours call dad"), 1),
    Case("timezone", say("/timezone Europe/Berlin"), 1),
    Case("forget_all asks", after("/save a note", "/forget_all"), 1),
    Case("role", say(f"/role {USER} admin", ADMIN), 1),
    Case("broadcast preview", say("/broadcast office closed friday", ADMIN), 1),
    Case("undo a save", press("/save the gas meter is in the hall", code=Button.UNDO_SAVE), 1),
    Case("more results", press("/recall spare part", code=Button.RECALL_MORE), 0),
    Case("older list page", press("/list", code=Button.LIST_PAGE), 0),
    Case("edit", on_saved("/edit {} the gas meter is in the cellar"), 1),
    Case("forget", on_saved("/forget {}"), 1),
    Case("an edited message", edited(), 1),
    Case("import", imported(), 1),
    Case("confirm forget_all", press("/forget_all", code=Button.CONFIRM_FORGET_ALL), 1),
    Case(
        "cancel a reminder",
        press("/remind in 2 hours call mom", "/reminders", code=Button.CANCEL_REMINDER),
        1,
    ),
    Case("a newcomer's first message", newcomer("/start"), 1),
    Case("a newcomer's save in a group", newcomer("/save lunch", chat=GROUP), 1),
    Case("a newcomer's first save", newcomer("the gas meter is in the hall"), 1),
    Case("a renamed user's save", renamed("the gas meter is in the hall"), 1),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_an_update_commits_at_most_once(
    kit: Kit, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    action = await case.setup(kit)
    caplog.set_level(logging.DEBUG, logger="memorybot.tx")
    caplog.clear()
    answered(await kit.run(action))
    writes = update_writes(caplog)
    assert len(writes) <= case.writes, writes


async def test_a_recall_commits_nothing_on_its_way_to_the_answer(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 31: a recall costs no write transaction (its memo is written behind)."""
    answered(await kit.run(kit.say(USER, "/start")))  # the user's row as Telegram shows them
    await kit.engine.writes.save(space_id=USER, text="the spare key is under the mat")
    caplog.set_level(logging.DEBUG, logger="memorybot.tx")
    caplog.clear()
    replies = await kit.run(kit.say(USER, "/recall where is the spare key"))
    assert "under the mat" in replies[0]
    assert update_writes(caplog) == []


async def test_a_prompted_save_commits_once(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 31: the prompt's clearing rides in the save's transaction (it was one more)."""
    answered(await kit.run(kit.say(USER, "/start")))
    answered(await kit.run(kit.say(USER, "/save")))
    caplog.set_level(logging.DEBUG, logger="memorybot.tx")
    caplog.clear()
    replies = await kit.run(kit.say(USER, "the gas meter is in the hall"))
    assert "Saved" in replies[0]
    assert update_writes(caplog) == ["op=save"]
    again = await kit.run(kit.say(USER, "/recall gas meter"))
    assert "in the hall" in again[0], "a plain message after the answer is no answer again"


async def test_the_first_remind_commits_once_with_the_zone_it_chose(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 31: the first /remind makes UTC the user's explicit zone in the reminder's own
    transaction (it was a second one)."""
    answered(await kit.run(kit.say(USER, "/start")))
    caplog.set_level(logging.DEBUG, logger="memorybot.tx")
    caplog.clear()
    [confirmed] = await kit.run(kit.say(USER, "/remind in 2 hours call the plumber"))
    assert "Times are read in UTC" in confirmed
    assert update_writes(caplog) == ["op=remind"]
    user = await kit.engine.users.get(user_id=USER)
    assert user is not None
    assert user.timezone == "UTC"
    [second] = await kit.run(kit.say(USER, "/remind in 3 hours call the plumber again"))
    assert "Times are read in UTC" not in second, "said once"


async def test_a_newcomers_first_save_registers_them_in_its_transaction(kit: Kit) -> None:
    [confirmed] = await kit.run(
        lambda: kit.emulator.user_message(NEWCOMER, "the gas meter is in the hall", username="nc")
    )
    assert "Saved" in confirmed
    user = await kit.engine.users.get(user_id=NEWCOMER)
    assert user is not None
    assert (user.username, user.is_active, user.role) == ("nc", True, "user")
    [memory] = (await kit.engine.reads.page(space_id=NEWCOMER)).items
    assert memory.text == "the gas meter is in the hall"


async def test_a_newcomers_refused_message_still_registers_them(kit: Kit) -> None:
    """Nothing carried the registration: it is written at the end of the update."""
    [refused] = await kit.run(lambda: kit.emulator.user_message(NEWCOMER, "x" * 20_000))
    assert "⚠️" in refused
    user = await kit.engine.users.get(user_id=NEWCOMER)
    assert user is not None
    assert user.is_active
    assert (await kit.engine.reads.page(space_id=NEWCOMER)).total == 0
    services = kit.processor.services
    assert (services.users_in_update, services.unwritten, services.held_in_update) == ({}, {}, {})


async def test_what_an_update_read_is_forgotten_when_it_ends(kit: Kit) -> None:
    """A prompt's answer reads like a save in the gate (user row and the space's count) but
    is a recall: nothing read for the update outlives it."""
    answered(await kit.run(kit.say(USER, "/start")))
    answered(await kit.run(kit.say(USER, "/recall")))
    answered(await kit.run(kit.say(USER, "spare key")))
    services = kit.processor.services
    assert (services.users_in_update, services.unwritten, services.held_in_update) == ({}, {}, {})


async def test_a_renamed_users_save_keeps_their_new_name(kit: Kit) -> None:
    answered(await kit.run(kit.say(USER, "/start")))
    renaming = lambda: kit.emulator.user_message(USER, "a note", username="new_name")  # noqa: E731
    answered(await kit.run(renaming))
    user = await kit.engine.users.get(user_id=USER)
    assert user is not None
    assert user.username == "new_name"
