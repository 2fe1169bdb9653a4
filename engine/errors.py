"""Typed errors: what went wrong, said plainly enough to show a user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.exc import IntegrityError


class MemoryBotError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidInput(MemoryBotError):
    """The request was refused before anything was written."""


class EmptyText(InvalidInput):
    def __init__(self) -> None:
        super().__init__("There is nothing to remember: the text is empty.")


class NotUnicode(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "That text holds a character that is not valid Unicode (a lone surrogate)."
        )


class TextTooLong(InvalidInput):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"That text has {length:,} characters; the limit is {limit:,}.")
        self.length = length
        self.limit = limit


class UnknownUser(InvalidInput):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"User {user_id} is not registered; send /start first.")
        self.user_id = user_id


class MemoryNotFound(InvalidInput):
    def __init__(self, memory_id: str) -> None:
        super().__init__(f"No memory {memory_id} of yours was found.")
        self.memory_id = memory_id


class WriteFailed(MemoryBotError):
    """A write did not happen; both stores were left as they were (unless said otherwise).

    `cause` (the storage error that made it fail) is kept as `__cause__` even when the error
    is raised without `from`, so a caller can classify failures by walking the cause chain.
    """

    step = "write"

    def __init__(self, op: str, ids: Sequence[str], cause: BaseException | None = None) -> None:
        reason = f": {type(cause).__name__}" if cause else ""
        super().__init__(f"{op} failed at {self.step}{reason}; nothing was changed.")
        self.op = op
        self.ids = list(ids)
        if cause is not None:
            self.__cause__ = cause


class SqlWriteFailed(WriteFailed):
    """Flushing the rows failed; SQL was rolled back and no vector was written."""

    step = "flush"


class VectorWriteFailed(WriteFailed):
    """The vector write failed; SQL was rolled back, so nothing was saved.

    The write may have landed all the same (a lost reply); undoing it is best effort, and a
    vector it leaves behind belongs to no committed row: the sweep deletes it after its grace
    period (the tx log line then says `compensation=deferred`).
    """

    step = "vector_write"


class CommitFailed(WriteFailed):
    """The commit failed; the vector writes made before it were undone."""

    step = "commit"


class CompensationFailed(WriteFailed):
    """A vector write succeeded, the commit failed, and undoing that write failed too.

    The index now disagrees with SQL for `ids`: `memorybot repair` (or the sweep) fixes it.
    """

    step = "compensation"

    def __init__(self, op: str, ids: Sequence[str], cause: BaseException | None = None) -> None:
        super().__init__(op, ids, cause)
        self.args = (f"{op} failed and its vector write could not be undone; needs repair",)


class AlreadyExists(InvalidInput):
    """A write ran into a unique constraint: what it adds is there already."""

    def __init__(self, op: str) -> None:
        super().__init__(f"{op}: that already exists.")
        self.op = op


class SourceTaken(AlreadyExists):
    def __init__(self) -> None:
        InvalidInput.__init__(self, "That message was already saved by someone else.")
        self.op = "save"


class AmbiguousId(InvalidInput):
    def __init__(self, prefix: str) -> None:
        super().__init__(f"More than one memory starts with {prefix}; type more of the id.")
        self.prefix = prefix


class BadId(InvalidInput):
    def __init__(self, given: str) -> None:
        super().__init__(f"{given!r} is not a memory id; ids look like 3f2a9c1b.")


def translate(op: str, ids: Sequence[str], error: IntegrityError) -> MemoryBotError:
    """A constraint violation as the domain error it means (SqlWriteFailed if none fits)."""
    text = str(error.orig if error.orig is not None else error)
    if "message_id" in text and ("memories" in text or "uq_memories" in text):
        return SourceTaken()
    if "UNIQUE" in text or "duplicate key" in text or "unique constraint" in text:
        return AlreadyExists(op)
    return SqlWriteFailed(op, ids, error)
