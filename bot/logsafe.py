"""Errors described for logs and dead letters without quoting what users wrote.

Message texts are only logged at DEBUG. An exception's message may quote a value (a text, a
parameter), so above DEBUG only the messages of errors whose wording we know are shown (the
Bot API's answers and the engine's own failures, whose messages name steps and counts); any
other is named by its type, and the full traceback with messages goes to DEBUG.
"""

from __future__ import annotations

import logging
import traceback

from telegram.error import TelegramError

from engine.errors import InvalidInput, MemoryBotError

REDACTED = "(message hidden; see DEBUG)"


def quotes_nothing(error: BaseException) -> bool:
    """True for errors whose messages never carry user text."""
    if isinstance(error, InvalidInput):  # e.g. BadId quotes what was typed
        return False
    return isinstance(error, TelegramError | MemoryBotError)


def describe_error(error: BaseException) -> str:
    """`Type: message` for errors that quote nothing, else just the type."""
    name = type(error).__name__
    return f"{name}: {error}" if quotes_nothing(error) else name


def redacted_trace(error: BaseException) -> str:
    """The traceback of `error` and its causes, with untrusted messages hidden."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    blocks = []
    for link in reversed(chain):
        frames = "".join(traceback.format_tb(link.__traceback__))
        said = str(link) if quotes_nothing(link) else REDACTED
        blocks.append(f"Traceback (most recent call last):\n{frames}{type(link).__name__}: {said}")
    return "\n\nwhich led to:\n\n".join(blocks)


def log_failure(log: logging.Logger, message: str, *args: object, error: BaseException) -> None:
    """An ERROR line with the redacted traceback; the full one (with messages) at DEBUG."""
    log.error(message + "\n%s", *args, redacted_trace(error))
    log.debug("full traceback of the failure above", exc_info=error)
