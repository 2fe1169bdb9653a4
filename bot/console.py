"""`memorybot console`: chat with the bot in the terminal through the local Bot API emulator."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable

from bot.runner import polling_intake, running_bot
from botapi_emulator import BotApiEmulator, SentMessage
from engine.settings import Settings

CONSOLE_USER = 1_000_001
REPLY_WAIT_S = 20.0
BANNER = """memorybot console: the real bot, talking to a local Bot API emulator.
Type a message to save it, or a /command (/help lists them). Buttons appear as [#1], [#2]:
type #1 to press one. Ctrl-D or /quit leaves."""


def buttons_of(message: SentMessage) -> list[tuple[str, str]]:
    markup = message.reply_markup or {}
    rows = markup.get("inline_keyboard", [])
    return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


def show(message: SentMessage, out: Callable[[str], None]) -> None:
    if message.document is not None:
        out(f"bot> 📎 {message.file_name} ({len(message.document)} bytes) {message.caption or ''}")
    else:
        out("bot> " + (message.plain or "").replace("\n", "\n     "))
    choices = buttons_of(message)
    if choices:
        out("     " + "  ".join(f"[#{i}] {text}" for i, (text, _) in enumerate(choices, 1)))


async def read_line(prompt: str) -> str | None:
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


def changed(
    emulator: BotApiEmulator, before: dict[int, int], answers: int
) -> Callable[[list[SentMessage]], bool]:
    """True once the bot sent or edited a message, or answered a button press."""

    def check(sent: list[SentMessage]) -> bool:
        moved = any(before.get(m.message_id) != m.edits for m in sent)
        return moved or len(emulator.callback_answers) > answers

    return check


async def converse(emulator: BotApiEmulator, out: Callable[[str], None]) -> None:
    """Read lines, send them as the console user, print what the bot answers."""
    chat = CONSOLE_USER
    while True:
        line = await read_line("you> ")
        if line is None or line.strip() in ("/quit", "/exit"):
            return
        if not line.strip():
            continue
        before = {m.message_id: m.edits for m in emulator.sent(chat)}
        answers = len(emulator.callback_answers)
        press = re.fullmatch(r"#(\d+)", line.strip())
        if press:
            with_buttons = [m for m in emulator.sent(chat) if buttons_of(m)]
            choices = buttons_of(with_buttons[-1]) if with_buttons else []
            index = int(press.group(1)) - 1
            if not 0 <= index < len(choices):
                out("(no such button)")
                continue
            emulator.press_button(chat, with_buttons[-1].message_id, choices[index][1])
        else:
            emulator.user_message(chat, line, first_name="You", username="console")
        try:
            await emulator.wait_for(
                changed(emulator, before, answers), chat_id=chat, timeout=REPLY_WAIT_S
            )
        except TimeoutError:
            out("(no reply)")
        await asyncio.sleep(0.2)  # multi-part replies arrive together
        for answer in emulator.callback_answers[answers:]:
            if answer.get("text"):
                out(f"bot> ({answer['text']})")
        for message in emulator.sent(chat):
            if before.get(message.message_id) != message.edits:
                show(message, out)


async def run_console(settings: Settings) -> int:
    """Start the emulator in-process, point the bot at it and chat; no token, no network."""
    emulator = BotApiEmulator()
    await emulator.start()
    out = print
    try:
        async with running_bot(
            settings, token=emulator.token, base_url=emulator.base_url
        ) as runtime:
            intake = polling_intake(runtime, poll_timeout_s=1)
            polling = asyncio.create_task(intake.run())
            out(BANNER)
            try:
                await converse(emulator, out)
            finally:
                intake.stop()
                await polling
    finally:
        await emulator.stop()
    sys.stdout.flush()
    return 0
