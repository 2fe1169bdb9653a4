"""Property test: whatever Telegram delivers, the bot keeps running and its stores stay in step.

How the examples are run: pytest-asyncio runs a Hypothesis `@given` coroutine test natively (it
wraps `hypothesis.inner_test` in the test's event loop runner), so every example executes in
the same event loop as the function-scoped `bot` fixture: one bot, one emulator and one database
per test function, and all examples of that test run against them, one after another. That is
exactly what a long-lived bot sees: the state left by earlier updates (pending /save or
/recall conversations, forget-all confirmations, earlier memories) meets the next ones. The
`function_scoped_fixture` health check is suppressed on purpose for that reason. No strategy's
`.example()` is used and no seed is fixed; Hypothesis prints the failing example (shrunk) and
its seed, and `database=None` keeps it from writing a `.hypothesis/` folder into the project.

An example is a short list of updates drawn from these families, queued together so that the
bot receives them as one getUpdates batch:

* text messages in private chats: arbitrary unicode (no lone surrogates), control characters,
  texts around and above the 4,000-character memory limit, commands (known, unknown, addressed
  to this or another bot) with garbage arguments, and arbitrary `entities` (bot_command at odd
  offsets, bold and others with out-of-range lengths, or none at all);
* the same in group and supergroup chats (negative chat ids);
* acting on real state: presses of real buttons on the bot's own messages (Undo, delete, More,
  Older/Newer, the forget-all confirmation, repeated presses included), /edit and /forget of
  the user's real memory ids, and edits of the user's earlier messages, all with the texts above;
* odd shapes injected raw: messages without text (location, dice, sticker, uncaptioned photo),
  captioned documents, channel posts, edited messages for message ids that never existed,
  callback queries with random data on a real bot message, on a message the bot never sent or
  with no message at all, `my_chat_member` changes, a poll, and an update type that does not
  exist yet.

The property, checked after every example: no update was parked as a dead letter and no
"something went wrong" apology was sent (a handler raising on user input is a bug), SQL and
Chroma agree (`check()` finds no drift), the intake task is alive and still answers a brand-new
user's /start.

Bugs found this way (an update PTB cannot parse stopping the intake, a double-tapped page
button, a press answered too late, a message without `from`, an edit of a non-memory) each have
a regression test at the bottom of this module. `KNOWN_BUG_ERRORS` is empty: any dead letter
fails the property.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ledger import DeadLetter, UpdateLedger
from botapi_emulator import BotApiEmulator, button_data
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

USERS = (61_001, 61_002, 61_003, 61_004)
GROUPS = (-400_001, -1_000_000_400_002)  # a group and a supergroup
BOT_USERNAME = "memorybot_test_bot"
APOLOGY = "something went wrong"
SETTLE_TIMEOUT_S = 60.0
FRESH_USERS = itertools.count(62_000_001)
SERIAL = itertools.count(1)
ME = "@me"  # in callback data: replaced by the presser's id when the update is queued
# Dead-letter errors of pinned bugs (see the xfail tests) that random presses can reach.
KNOWN_BUG_ERRORS: tuple[str, ...] = ()
# Message ids of the private text messages each user sent, per emulator (for edits).
TYPED: weakref.WeakKeyDictionary[BotApiEmulator, dict[int, list[int]]] = (
    weakref.WeakKeyDictionary()
)

# ---- strategies ------------------------------------------------------------------------------
SAFE = st.characters(codec="utf-8")  # any code point but lone surrogates
CONTROL = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.sampled_from("\x7f\x85\u200b\u200e\u2028\u2029\ufeff\u202e"),
)
COMMANDS = (
    "/start",
    "/help",
    "/cancel",
    "/save",
    "/recall",
    "/search",
    "/list",
    "/edit",
    "/forget",
    "/forget_all",
    "/export",
    "/stats",
    "/role",
    "/audit",
    "/dlq",
    "/broadcast",
    "/broadcast_status",
    "/broadcast_cancel",
    "/nosuchcommand",
    f"/start@{BOT_USERNAME}",
    "/save@some_other_bot",
    "/SAVE",
    "/",
)
GARBAGE_ARGS = (
    "zzz",
    "99999d x",
    "0d x",
    "9999w x",
    "3650d keep this",
    "7d",
    "30m   ",
    "deadbeef",
    "deadbeef new text",
    "0000 x",
    "-1",
    "ffffffff-ffff-ffff",
    "<b>bold?</b> & <i>",
    "&amp; &lt;",
    "%_ LIKE \\ wildcards",
    "' OR 1=1 --",
)


def _long_text(seed: str, size: int) -> str:
    return (seed * (size // len(seed) + 1))[:size]


COMMAND_TEXTS = st.builds(
    "{}{}{}".format,
    st.sampled_from(COMMANDS),
    st.sampled_from([" ", "\n", "  ", "\t", ""]),
    st.one_of(
        st.just(""),
        st.sampled_from(GARBAGE_ARGS),
        st.from_regex(r"[0-9a-f]{4,8}( [a-z ]{0,12})?", fullmatch=True),
        st.text(st.one_of(SAFE, CONTROL), max_size=40),
    ),
)
TEXTS = st.one_of(
    COMMAND_TEXTS,
    COMMAND_TEXTS,
    st.text(SAFE, min_size=1, max_size=200),
    st.text(st.one_of(SAFE, CONTROL), min_size=1, max_size=60),
    st.builds(_long_text, st.text(SAFE, min_size=1, max_size=12), st.integers(3_990, 5_000)),
)
ENTITY = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["bot_command", "bold", "italic", "code", "pre", "mention", "hashtag", "url"]
        ),
        "offset": st.one_of(st.integers(0, 8), st.integers(0, 6_000)),
        "length": st.one_of(st.integers(0, 8), st.integers(0, 6_000)),
    }
)
ENTITIES = st.one_of(st.none(), st.lists(ENTITY, max_size=3))
OWNER = st.one_of(
    st.just(ME), st.sampled_from(USERS).map(str), st.integers(0, 10**20 - 1).map(str)
)
ARG = st.one_of(
    st.just(""),
    st.integers(0, 999_999).map(str),
    st.just("9" * 32),
    st.from_regex(r"[0-9a-f]{1,32}", fullmatch=True),
    st.text(SAFE, max_size=12),
)
CALLBACK_DATA = st.one_of(
    st.text(SAFE, min_size=1, max_size=40),
    st.builds(
        "{}:{}:{}".format,
        st.sampled_from(["u", "d", "rp", "lp", "fa", "fx", "bs", "bx", "zz", ""]),
        OWNER,
        ARG,
    ),
).filter(lambda data: 1 <= len(data.encode()) <= 64)  # what Telegram lets a button carry


@dataclass(frozen=True)
class Action:
    """One update to queue: `kind` picks the shape, the other fields fill it in."""

    kind: str
    user: int
    text: str = ""
    entities: list[dict[str, Any]] | None = None
    chat: int = 0
    data: str = ""
    pick: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _actions() -> st.SearchStrategy[Action]:
    user = st.sampled_from(USERS)
    private_text = st.builds(
        Action, kind=st.just("text"), user=user, text=TEXTS, entities=ENTITIES
    )
    group_text = st.builds(
        Action,
        kind=st.just("group_text"),
        user=user,
        text=TEXTS,
        entities=ENTITIES,
        chat=st.sampled_from(GROUPS),
    )
    real = st.builds(
        Action,
        kind=st.sampled_from(["press_real", "edit_real", "forget_real", "retype_real"]),
        user=user,
        text=TEXTS,
        pick=st.integers(0, 999),
    )
    odd = st.one_of(
        st.builds(
            Action,
            kind=st.sampled_from(["location", "dice", "sticker", "photo", "document"]),
            user=user,
            text=TEXTS,
        ),
        st.builds(Action, kind=st.just("channel_post"), user=user, text=TEXTS),
        st.builds(Action, kind=st.just("edit_unknown"), user=user, text=TEXTS),
        st.builds(
            Action,
            kind=st.sampled_from(["press_sent", "press_never_sent", "press_inline"]),
            user=user,
            data=CALLBACK_DATA,
            pick=st.integers(0, 999),
        ),
        st.builds(Action, kind=st.just("my_chat_member"), user=user),
        st.builds(Action, kind=st.just("poll"), user=user, text=TEXTS),
        st.builds(
            Action,
            kind=st.just("future_type"),
            user=user,
            extra=st.dictionaries(st.text(SAFE, max_size=8), st.integers(), max_size=3),
        ),
    )
    # Weighted by repetition: mostly what users type, then acting on real memories, buttons
    # and messages, then the odd shapes.
    return st.one_of(private_text, private_text, private_text, group_text, real, real, odd, odd)


ACTIONS = st.lists(_actions(), min_size=1, max_size=10)


# ---- injecting ------------------------------------------------------------------------------
def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Fuzz", "language_code": "en"}


def _private(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "type": "private", "first_name": "Fuzz"}


def _message(
    emulator: BotApiEmulator, chat: dict[str, Any], sender: int | None, **content: Any
) -> dict[str, Any]:
    """A Message object in `chat` (from `sender`, or with no `from` at all when None)."""
    message_id = emulator.next_message_id(int(chat["id"]))
    message = {"message_id": message_id, "date": int(time.time()), "chat": chat, **content}
    return message if sender is None else message | {"from": _user(sender)}


def _query(emulator: BotApiEmulator, action: Action, **where: Any) -> dict[str, Any]:
    """A callback_query the emulator accepts an answer for (as for a fresh, real press)."""
    query_id = f"fuzz-{next(SERIAL)}"
    emulator._callbacks.add(query_id)
    return {
        "callback_query": {
            "id": query_id,
            "from": _user(action.user),
            "chat_instance": str(action.user * 31 + 7),
            "data": action.data.replace(ME, str(action.user)),
            **where,
        }
    }


async def inject(bot: BotUnderTest, action: Action) -> None:
    """Queue `action` as an update (not processed yet)."""
    emulator = bot.emulator
    user, text, kind = action.user, action.text, action.kind
    if kind == "text":
        message_id = emulator.user_message(user, text, entities=action.entities)
        TYPED.setdefault(emulator, {}).setdefault(user, []).append(message_id)
    elif kind in ("edit_real", "forget_real"):
        mine = (await bot.engine.reads.page(space_id=user, limit=50)).items
        ref = mine[action.pick % len(mine)].short_id if mine else "0000"
        command = f"/edit {ref} {text}" if kind == "edit_real" else f"/forget {ref}"
        emulator.user_message(user, command)
    elif kind == "retype_real":  # the user edits one of their earlier text messages
        typed = TYPED.get(emulator, {}).get(user, [])
        if typed:
            emulator.user_edit(user, typed[action.pick % len(typed)], text)
        else:
            emulator.user_message(user, text)
    elif kind == "group_text":
        emulator.user_message(user, text, chat_id=action.chat, entities=action.entities)
    elif kind == "location":
        location = {"latitude": 52.37, "longitude": 4.89}
        emulator.raw_update(
            {"message": _message(emulator, _private(user), user, location=location)}
        )
    elif kind == "dice":
        dice = {"emoji": "🎲", "value": 3}
        emulator.raw_update({"message": _message(emulator, _private(user), user, dice=dice)})
    elif kind == "sticker":
        emulator.user_sticker(user)
    elif kind == "photo":
        emulator.user_photo(user)
    elif kind == "document":
        emulator.user_document(user, "notes.txt", caption=text[:1024])
    elif kind == "channel_post":
        channel = {"id": -1_000_000_900_001, "type": "channel", "title": "Fuzz channel"}
        emulator.raw_update(
            {"channel_post": _message(emulator, channel, None, text=text, sender_chat=channel)}
        )
    elif kind == "edit_unknown":
        edited = _message(emulator, _private(user), user, text=text, edit_date=int(time.time()))
        edited["message_id"] += 10**9
        emulator.raw_update({"edited_message": edited})
    elif kind == "press_sent":
        on = [m for m in emulator.sent(user) if not m.deleted and m.document is None]
        if on:
            target = on[action.pick % len(on)]
            data = action.data.replace(ME, str(user))
            emulator.press_button(user, target.message_id, data, strict=False)
        else:
            emulator.raw_update(_query(emulator, action))
    elif kind == "press_real":
        keyed = [m for m in emulator.sent(user) if not m.deleted and button_data(m.reply_markup)]
        if keyed:
            target = keyed[action.pick % len(keyed)]
            buttons = button_data(target.reply_markup)
            data = buttons[(action.pick // len(keyed)) % len(buttons)]
            emulator.press_button(user, target.message_id, data)
        else:  # nothing to press yet: a save, whose reply carries an Undo button
            emulator.user_message(user, f"fuzz memory {action.pick}")
    elif kind == "press_never_sent":
        fake = {
            "message_id": 10**9 + action.pick,
            "date": int(time.time()),
            "chat": _private(user),
            "from": emulator.bot_user,
            "text": "a message this bot never sent",
        }
        emulator.raw_update(_query(emulator, action, message=fake))
    elif kind == "press_inline":
        emulator.raw_update(_query(emulator, action, inline_message_id=f"inline-{action.pick}"))
    elif kind == "my_chat_member":
        member = {"user": emulator.bot_user, "status": "member"}
        kicked = {"user": emulator.bot_user, "status": "kicked", "until_date": 0}
        change = {
            "chat": _private(user),
            "from": _user(user),
            "date": int(time.time()),
            "old_chat_member": member,
            "new_chat_member": kicked,
        }
        emulator.raw_update({"my_chat_member": change})
    elif kind == "poll":
        poll = {
            "id": f"poll-{next(SERIAL)}",
            "question": text[:300] or "?",
            "options": [
                {"text": "yes", "voter_count": 1, "persistent_id": "opt-yes"},
                {"text": "no", "voter_count": 0, "persistent_id": "opt-no"},
            ],
            "total_voter_count": 1,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
        emulator.raw_update({"poll": poll})
    elif kind == "future_type":
        emulator.raw_update({"some_future_update_type": {"user": _user(user), **action.extra}})
    else:
        raise AssertionError(f"unknown action kind {kind!r}")


# ---- checking -------------------------------------------------------------------------------
async def settle(bot: BotUnderTest) -> None:
    """Wait until every queued update was processed and confirmed (fail fast if intake died)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while bot.emulator.pending_updates():
        assert bot._task is not None
        if bot._task.done():
            error = bot._task.exception()
            raise AssertionError(f"the intake task died: {error!r}") from error
        if time.monotonic() > deadline:
            raise TimeoutError(f"{bot.emulator.pending_updates()} updates never confirmed")
        await asyncio.sleep(0.02)
    await bot.settled(SETTLE_TIMEOUT_S)


def describe(letters: list[DeadLetter]) -> str:
    return "\n".join(
        f"update {lt.update_id}: {lt.error}\n  raw={lt.raw!r}"[:1500] for lt in letters
    )


async def assert_healthy(bot: BotUnderTest) -> None:
    """No dead letter, no apology, no drift, and a brand-new user still gets the welcome."""
    letters = await UpdateLedger(bot.engine.stores).dead_letters(limit=1_000)
    unknown = [lt for lt in letters if not any(bug in lt.error for bug in KNOWN_BUG_ERRORS)]
    assert unknown == [], "handlers raised on user input:\n" + describe(unknown)
    apologies = [m.text for m in bot.emulator.sent() if APOLOGY in (m.text or "")]
    assert len(apologies) <= len(letters), apologies
    report = await bot.engine.index.check()
    assert not report.drift, report.as_dict()
    assert bot._task is not None
    assert not bot._task.done(), "the intake task has stopped"
    [welcome] = await bot.say(next(FRESH_USERS), "/start")
    assert "remember" in (welcome.text or "")


# ---- the property ---------------------------------------------------------------------------
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(actions=ACTIONS)
async def test_fuzzed_updates_never_break_the_bot(
    bot: BotUnderTest, actions: list[Action]
) -> None:
    for action in actions:
        await inject(bot, action)
    await settle(bot)
    await assert_healthy(bot)


async def test_fuzz_smoke_every_kind_once(bot: BotUnderTest) -> None:
    """Each action family once, deterministically (a fast canary next to the random test)."""
    kinds = [
        Action("text", USERS[0], "remember the blue umbrella"),
        Action("text", USERS[0], "/forget zzz"),
        Action("text", USERS[0], "/save 99999d x"),
        Action("text", USERS[0], "/edit"),
        Action("text", USERS[0], "hello", [{"type": "bot_command", "offset": 0, "length": 90}]),
        Action("text", USERS[0], "x" * 5_000, [{"type": "bold", "offset": 3, "length": 9_999}]),
        Action("group_text", USERS[1], "group chatter", chat=GROUPS[0]),
        Action("group_text", USERS[1], "/save in a group", chat=GROUPS[1]),
        Action("location", USERS[2]),
        Action("dice", USERS[2]),
        Action("sticker", USERS[2]),
        Action("photo", USERS[2]),
        Action("document", USERS[2], "caption to keep"),
        Action("channel_post", USERS[2], "channel news"),
        Action("edit_unknown", USERS[3], "edited text"),
        Action("press_real", USERS[0], pick=0),
        Action("edit_real", USERS[0], "the umbrella is green\x07", pick=1),
        Action("retype_real", USERS[0], "  ", pick=0),
        Action("forget_real", USERS[0], pick=2),
        Action("press_sent", USERS[0], data="zz:1:"),
        Action("press_sent", USERS[0], data=f"lp:{ME}:ab"),
        Action("press_sent", USERS[0], data=f"lp:{ME}:{'9' * 32}"),
        Action("press_sent", USERS[0], data=f"rp:{ME}:zz"),
        Action("press_never_sent", USERS[3], data=f"d:{USERS[3]}:deadbeef"),
        Action("press_inline", USERS[3], data="garbage"),
        Action("my_chat_member", USERS[3]),
        Action("poll", USERS[3], "lunch?"),
        Action("future_type", USERS[3], extra={"x": 1}),
    ]
    for action in kinds:
        await inject(bot, action)
    await settle(bot)
    await assert_healthy(bot)
    texts = {m.text for m in (await bot.engine.reads.page(space_id=USERS[0], limit=50)).items}
    assert "remember the blue umbrella" in texts


# ---- bugs found by the fuzzing above, pinned --------------------------------------------------
async def _letters(bot: BotUnderTest) -> list[str]:
    return [letter.error for letter in await UpdateLedger(bot.engine.stores).dead_letters()]


def _apologies(emulator: BotApiEmulator) -> list[str]:
    return [m.text or "" for m in emulator.sent() if APOLOGY in (m.text or "")]


async def test_message_without_sender_is_ignored_not_parked(bot: BotUnderTest) -> None:
    user = USERS[0]
    bot.emulator.raw_update(
        {"message": _message(bot.emulator, _private(user), None, text="who sent this?")}
    )
    await settle(bot)
    assert await _letters(bot) == []
    assert _apologies(bot.emulator) == []


async def test_an_update_ptb_cannot_parse_does_not_stop_the_intake(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    bot = BotUnderTest(settings, emulator)
    await bot.start()
    try:
        poll = {  # a poll as an older Bot API sends it: PTB 22.8 insists on `persistent_id`
            "id": "poll-1",
            "question": "lunch?",
            "options": [{"text": "yes", "voter_count": 1}],
            "total_voter_count": 1,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
        }
        emulator.raw_update({"poll": poll})
        emulator.user_message(USERS[1], "/start")
        await settle(bot)  # fails fast when the intake task died
        [welcome] = emulator.sent(USERS[1])
        assert "remember" in (welcome.text or "")
    finally:
        try:
            await bot.stop()
        except Exception:  # the dead intake task re-raises its error here
            assert bot._stack is not None
            await bot._stack.aclose()


async def test_double_tap_on_a_page_button_is_harmless(bot: BotUnderTest) -> None:
    user = USERS[0]
    for i in range(12):
        await bot.say(user, f"numbered note {i}")
    [page] = await bot.say(user, "/list")
    older = f"lp:{user}:10"
    bot.emulator.press_button(user, page.message_id, older)  # two taps before the first edit
    bot.emulator.press_button(user, page.message_id, older)
    await settle(bot)
    [shown] = [m for m in bot.emulator.sent(user) if m.message_id == page.message_id]
    assert "11–12 of 12" in (shown.text or "")
    assert await _letters(bot) == []
    assert _apologies(bot.emulator) == []


async def test_a_press_answered_too_late_is_not_parked(bot: BotUnderTest) -> None:
    user = USERS[0]
    [saved] = await bot.say(user, "the spare key is under the mat")
    [memory] = (await bot.engine.reads.page(space_id=user, limit=5)).items
    late = {  # a real Undo press whose query id Telegram no longer accepts answers for
        "id": "expired-query-1",
        "from": _user(user),
        "chat_instance": "1",
        "data": f"u:{user}:{memory.short_id}",
        "message": bot.emulator.bot_message(saved),
    }
    bot.emulator.raw_update({"callback_query": late})
    await settle(bot)
    assert (await bot.engine.reads.page(space_id=user, limit=5)).total == 0
    assert await _letters(bot) == []
    assert _apologies(bot.emulator) == []


async def test_editing_a_message_that_is_no_memory_gets_no_reply(bot: BotUnderTest) -> None:
    user, group = USERS[0], GROUPS[0]
    message_id = bot.emulator.user_message(user, "hello everyone", chat_id=group)
    await settle(bot)
    bot.emulator.user_edit(user, message_id, "long " * 815, chat_id=group)
    await settle(bot)
    assert [m.text for m in bot.emulator.sent(group)] == []
