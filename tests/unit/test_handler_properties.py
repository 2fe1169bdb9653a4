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

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from bot.keyboards import Button
from tests.unit.handler_kit import ADMIN, GROUP, OTHER, USER, Kit, answered, kit, settings

__all__ = ["kit", "settings"]  # fixtures
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
