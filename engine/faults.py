"""Named seams of the write protocol, and a plan of which ones to break (tests and drills)."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """The named seams of the write protocol, in order."""

    FLUSH = "flush"
    VECTOR_WRITE = "vector_write"
    COMMIT = "commit"
    COMPENSATION = "compensation"


class InjectedFault(RuntimeError):
    """Raised at a seam on purpose (tests and drills)."""


class Faults:
    """A plan of seams to break: `faults.fail(Step.COMMIT)` makes the next commit fail."""

    def __init__(self) -> None:
        self._remaining: dict[Step, int] = {}

    def fail(self, step: Step, times: int = 1) -> None:
        self._remaining[step] = times

    def check(self, step: Step) -> None:
        """Raise InjectedFault if `step` is planned to fail now."""
        left = self._remaining.get(step, 0)
        if left > 0:
            self._remaining[step] = left - 1
            raise InjectedFault(f"injected failure at {step}")
