"""Typed errors: what went wrong, said plainly enough to show a user."""

from __future__ import annotations

from collections.abc import Sequence


class MemoryBotError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidInput(MemoryBotError):
    """The request was refused before anything was written."""


class EmptyText(InvalidInput):
    def __init__(self) -> None:
        super().__init__("There is nothing to remember: the text is empty.")


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
    """A write did not happen; both stores were left as they were (unless said otherwise)."""

    step = "write"

    def __init__(self, op: str, ids: Sequence[str], cause: BaseException | None = None) -> None:
        reason = f": {type(cause).__name__}" if cause else ""
        super().__init__(f"{op} failed at {self.step}{reason}; nothing was changed.")
        self.op = op
        self.ids = list(ids)


class SqlWriteFailed(WriteFailed):
    step = "flush"


class VectorWriteFailed(WriteFailed):
    step = "vector_write"


class CommitFailed(WriteFailed):
    step = "commit"


class CompensationFailed(WriteFailed):
    """The commit failed and undoing the vector write failed too: the sweep must repair `ids`."""

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
