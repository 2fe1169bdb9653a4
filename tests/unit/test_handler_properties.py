"""Property test at handler level (issue 30): whatever a user types or a client forges into
/import, /remind, /role, /audit and button presses gets an answer, never a handler error (which
would be retried and parked as a dead letter with an apology), and never changes another user's
memories, reminders or role.

On fakes, so it stays in the quick tier: the real PTB Application and handlers, the engine on
the parametrized database with the in-memory vector index and the bag-of-words encoder, and the
Bot API emulator as Telegram. Updates are taken from the emulator and run once each through
`UpdateProcessor.run_once` (what the inbox worker calls); no intake, no retries. All examples
of a test run against one bot and one database, one after another, like a long-lived bot
(hence the suppressed `function_scoped_fixture` health check); `database=None` keeps Hypothesis
from writing a `.hypothesis/` folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from bot.app import build_application
from bot.context import BotApplication
from bot.keyboards import Button
from bot.processing import UpdateProcessor
from botapi_emulator import BotApiEmulator
from engine.app import MemoryEngine
from engine.schedule import Schedule
from engine.settings import Settings

ADMIN, USER, OTHER = 71_001, 71_002, 71_003
GROUP = -710_001
EXAMPLES = examples(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)  # JSON has no lone halves
NUMBERS = st.integers(min_value=-(2**70), max_value=2**70).map(str)
ODD = st.sampled_from(
    ["²", "٣", "-0", "1e3", "9" * 30, "0x10", " ", "\u200b", "@", "--5", "a\x00b", "@\x00"]
)  # NUL: PostgreSQL refuses it in a text parameter
WORD = st.one_of(TEXT, NUMBERS, ODD)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with ADMIN in ADMIN_USER_IDS (`fake_engine` opens with these)."""
    return settings.model_copy(update={"admin_user_ids": (ADMIN,)})


@dataclass
class Kit:
    """The bot's Application over the fake engine, the emulator, and OTHER's data to guard."""

    app: BotApplication
    engine: MemoryEngine
    emulator: BotApiEmulator
    processor: UpdateProcessor
    other_reminder: int
    other_short_id: str
    offset: int = 0

    def __repr__(self) -> str:  # Hypothesis prints the arguments of a failing example
        return "Kit()"

    async def run(self, queue: Callable[[], object]) -> list[str]:
        """Queue one user action, run its update once; the texts and answers the bot sent."""
        sent_before = len(self.emulator.sent())
        answered_before = len(self.emulator.callback_answers)
        queue()
        updates = await self.app.bot.get_updates(offset=self.offset, timeout=0)
        assert updates, "the emulator queued no update"
        for update in updates:
            self.offset = update.update_id + 1
            error = await self.processor.run_once(update)
            assert error is None, f"a handler raised {error!r}: a retry, then a dead letter"
        sent = [m.text or m.caption or "" for m in self.emulator.sent()[sent_before:]]
        answers = [str(a.get("text") or "") for a in self.emulator.callback_answers]
        return sent + answers[answered_before:]

    def say(self, user_id: int, text: str) -> Callable[[], object]:
        """The action: `user_id` sends `text` in their private chat."""
        return lambda: self.emulator.user_message(user_id, text)

    async def others(self) -> tuple[Any, ...]:
        """What USER's actions must never change: OTHER's memories, reminders and role."""
        page = await self.engine.reads.page(space_id=OTHER, limit=100)
        reminders = await self.engine.reminders.upcoming(space_id=OTHER)
        user = await self.engine.users.get(user_id=OTHER)
        return (
            sorted((m.id, m.text, m.updated_at) for m in page.items),
            [(r.id, r.status, r.due_at) for r in reminders],
            None if user is None else user.role,
        )


@pytest.fixture
async def kit(settings: Settings, fake_engine: MemoryEngine) -> AsyncIterator[Kit]:
    emulator = BotApiEmulator()
    await emulator.start()
    emulator.create_group(GROUP, title="g", kind="group", members=[USER, OTHER], creator=ADMIN)
    engine = fake_engine
    for user_id in (ADMIN, USER, OTHER):
        await engine.users.register(user_id=user_id, username=f"u{user_id}")
    saved = await engine.writes.save(space_id=OTHER, text="other's secret plan")
    due = datetime.now(UTC) + timedelta(days=2)
    reminder = await engine.reminders.create(
        space_id=OTHER, user_id=OTHER, schedule=Schedule(due, "other's dentist"), timezone="UTC"
    )
    app = build_application(settings, engine, token=emulator.token, base_url=emulator.base_url)
    await app.initialize()
    kit = Kit(app, engine, emulator, UpdateProcessor(app), reminder.id, saved.memory.id.hex[:8])
    yield kit
    await app.shutdown()
    await emulator.stop()


def answered(replies: list[str]) -> None:
    assert replies, "no answer at all"
    assert not any("something went wrong" in r for r in replies), replies


@EXAMPLES
@given(text=st.one_of(TEXT, st.builds(" ".join, st.lists(WORD, max_size=5))))
async def test_any_remind_text_gets_an_answer(kit: Kit, text: str) -> None:
    before = await kit.others()
    answered(await kit.run(lambda: kit.emulator.user_message(USER, f"/remind {text}")))
    assert await kit.others() == before


@EXAMPLES
@given(who=WORD, role=st.one_of(st.sampled_from(["admin", "user", "viewer"]), WORD))
async def test_any_role_arguments_get_an_answer(kit: Kit, who: str, role: str) -> None:
    if str(OTHER) in who or f"u{OTHER}" in who:
        who = "nobody"  # naming OTHER would change their role on purpose
    before = await kit.others()
    answered(await kit.run(lambda: kit.emulator.user_message(ADMIN, f"/role {who} {role}")))
    assert await kit.others() == before


@EXAMPLES
@given(args=st.lists(WORD, max_size=3))
async def test_any_audit_or_broadcast_cancel_arguments_get_an_answer(
    kit: Kit, args: list[str]
) -> None:
    for command in ("/audit", "/broadcast_cancel", "/dlq"):
        answered(await kit.run(kit.say(ADMIN, " ".join([command, *args]))))


JSONS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
EXPORTISH = st.fixed_dictionaries(
    {"memories": st.lists(st.dictionaries(st.sampled_from(["text", "created_at", "tags"]), JSONS))}
)


@EXAMPLES
@given(
    content=st.one_of(
        st.binary(max_size=600),
        JSONS.map(lambda v: json.dumps(v).encode()),
        EXPORTISH.map(lambda v: json.dumps(v).encode()),
    ),
    name=st.sampled_from(["memories.json", "notes.txt", "notes.md", "x.bin"]),
)
async def test_any_import_file_gets_an_answer(kit: Kit, content: bytes, name: str) -> None:
    before = await kit.others()
    replies = await kit.run(
        lambda: kit.emulator.user_document(USER, name, "/import", content=content)
    )
    answered(replies)
    assert await kit.others() == before


BUTTON_CODES = st.sampled_from([b.value for b in Button])


def forged(kit: Kit) -> st.SearchStrategy[str]:
    owners = st.one_of(st.sampled_from([USER, OTHER, GROUP, ADMIN]).map(str), NUMBERS, ODD)
    args = st.one_of(
        st.sampled_from([str(kit.other_reminder), kit.other_short_id, "0", "deadbeef"]),
        WORD,
    )
    structured = st.builds(lambda c, o, a: f"{c}:{o}:{a}", BUTTON_CODES, owners, args)
    return st.one_of(structured, TEXT.map(lambda t: t[:64]))


@EXAMPLES
@given(data=st.data())
async def test_any_forged_button_press_gets_an_answer(kit: Kit, data: st.DataObject) -> None:
    if not kit.emulator.sent(USER):
        await kit.run(lambda: kit.emulator.user_message(USER, "/save my own note"))
    target = kit.emulator.sent(USER)[0]
    pressed = data.draw(forged(kit))
    before = await kit.others()
    replies = await kit.run(
        lambda: kit.emulator.press_button(
            USER, target.message_id, pressed, chat_id=USER, strict=False
        )
    )
    assert not any("something went wrong" in r for r in replies), replies
    assert len(kit.emulator.callback_answers) > 0, "the press was not answered"
    assert await kit.others() == before


def update_writes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The write transactions an update committed (the per-user quota counts are written
    behind for everyone, not per update: left out)."""
    lines = [r.getMessage() for r in caplog.records if r.name == "memorybot.tx"]
    return [
        line.split()[1] for line in lines if "outcome=committed" in line and "op=quota" not in line
    ]


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


@pytest.mark.parametrize("who", ["a\x00b", "@a\x00", "名前", "@ab-cd"])
async def test_a_role_for_a_name_no_username_can_have_finds_no_one(kit: Kit, who: str) -> None:
    """Found by the property above on PostgreSQL: a NUL in the name reached the query and
    PostgreSQL refused it (a dead letter). A name Telegram cannot give is no one."""
    [answer] = await kit.run(kit.say(ADMIN, f"/role {who} admin"))
    assert "has talked to me yet" in answer


async def test_a_broadcast_with_a_nul_is_previewed_and_sent_without_it(kit: Kit) -> None:
    """Found next to the /role case: the confirmed broadcast's text reached PostgreSQL with
    its NUL (a dead letter and no broadcast)."""
    [preview] = await kit.run(kit.say(ADMIN, "/broadcast office closed\x00 friday"))
    assert "office closed friday" in preview
    shown = kit.emulator.sent(ADMIN)[-1]
    markup = shown.reply_markup or {}
    send = markup["inline_keyboard"][0][0]["callback_data"]
    await kit.run(lambda: kit.emulator.press_button(ADMIN, shown.message_id, send, chat_id=ADMIN))
    [newest] = await kit.engine.broadcasts.ids(limit=1)
    progress = await kit.engine.broadcasts.progress(newest)
    assert progress is not None
    assert progress.text == "office closed friday"
