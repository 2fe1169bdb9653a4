"""The unit of work: flush → vector write → commit, with compensation when the commit fails."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import CommitFailed, CompensationFailed, SqlWriteFailed, VectorWriteFailed
from storage.db import WriteSessions
from storage.vector_types import VectorRecord, VectorRef

log = logging.getLogger("memorybot.tx")
COMPENSATION_ATTEMPTS = 3
COMPENSATION_BACKOFF_S = 0.05


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
        left = self._remaining.get(step, 0)
        if left > 0:
            self._remaining[step] = left - 1
            raise InjectedFault(f"injected failure at {step}")


class VectorWriter(Protocol):
    async def upsert(self, records: Sequence[VectorRecord]) -> None: ...
    async def delete(self, refs: Sequence[VectorRef]) -> None: ...
    async def fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]: ...


def _ids_text(ids: Sequence[str]) -> str:
    shown = ",".join(ids[:10])
    return shown + (f",+{len(ids) - 10}more" if len(ids) > 10 else "")


class UnitOfWork:
    """Owns one AsyncSession and a stack of compensations for the vector writes it made.

    Leaving the block without `commit()` rolls SQL back and undoes every vector write.
    """

    session: AsyncSession

    def __init__(
        self,
        sessions: WriteSessions,
        vectors: VectorWriter,
        *,
        op: str,
        faults: Faults | None = None,
    ) -> None:
        self._sessions = sessions
        self._vectors = vectors
        self._faults = faults or Faults()
        self.op = op
        self.ids: list[str] = []
        self._undo: list[Callable[[], Awaitable[None]]] = []
        self.committed = False
        self._outcome: str | None = None
        self._started = 0.0

    async def __aenter__(self) -> Self:
        self._opened = self._sessions()
        self.session = await self._opened.__aenter__()
        self._started = time.perf_counter()
        return self

    def track(self, ids: Sequence[str]) -> None:
        """Name the memory ids this unit writes (for errors and the outcome log)."""
        self.ids.extend(i for i in ids if i not in self.ids)

    async def flush(self) -> None:
        """Step 1: rows exist and constraints are checked; nothing is visible to others."""
        try:
            self._faults.check(Step.FLUSH)
            await self.session.flush()
        except IntegrityError:
            raise
        except Exception as error:
            raise SqlWriteFailed(self.op, self.ids, error) from error

    async def upsert_vectors(self, records: Sequence[VectorRecord], *, replacing: bool) -> None:
        """Step 2: store vectors; `replacing` saves the old ones first so they can be restored."""
        refs = [r.ref for r in records]
        self.track([r.id for r in records])
        previous = await self._fetch(refs) if replacing else []
        kept = {p.id for p in previous}

        async def undo() -> None:
            await self._vectors.delete([ref for ref in refs if ref.id not in kept])
            await self._vectors.upsert(previous)

        await self._vector_write(undo, lambda: self._vectors.upsert(records))

    async def delete_vectors(self, refs: Sequence[VectorRef]) -> None:
        """Step 2: delete vectors, keeping copies to put back if the commit fails."""
        self.track([r.id for r in refs])
        previous = await self._fetch(refs)

        async def undo() -> None:
            await self._vectors.upsert(previous)

        await self._vector_write(undo, lambda: self._vectors.delete(refs))

    async def _fetch(self, refs: Sequence[VectorRef]) -> list[VectorRecord]:
        try:
            return await self._vectors.fetch(refs)
        except Exception as error:
            raise VectorWriteFailed(self.op, self.ids, error) from error

    async def _vector_write(
        self, undo: Callable[[], Awaitable[None]], write: Callable[[], Awaitable[None]]
    ) -> None:
        self._undo.append(undo)  # registered first: a write that fails half-way is undone too
        try:
            self._faults.check(Step.VECTOR_WRITE)
            await write()
        except Exception as error:
            raise VectorWriteFailed(self.op, self.ids, error) from error

    async def commit(self) -> None:
        """Step 3: make the rows durable; on failure undo the vector writes and raise."""
        try:
            self._faults.check(Step.COMMIT)
            await self.session.commit()
        except Exception as error:
            await self._rollback_quietly()
            await self._compensate()
            raise CommitFailed(self.op, self.ids, error) from error
        self.committed = True

    async def _compensate(self) -> None:
        undo, self._undo = self._undo, []
        if not undo:
            self._log("rolled_back", logging.INFO)
            return
        for step in reversed(undo):
            for attempt in range(COMPENSATION_ATTEMPTS):
                try:
                    self._faults.check(Step.COMPENSATION)
                    await step()
                    break
                except Exception as error:
                    if attempt == COMPENSATION_ATTEMPTS - 1:
                        self._log("compensation_failed", logging.ERROR)
                        raise CompensationFailed(self.op, self.ids, error) from error
                    await asyncio.sleep(COMPENSATION_BACKOFF_S * 2**attempt)
        self._log("compensated", logging.WARNING)

    async def _rollback_quietly(self) -> None:
        try:
            await self.session.rollback()
        except Exception:
            log.exception("tx op=%s rollback failed", self.op)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.committed:
                self._log("committed", logging.INFO)
            else:
                await self._rollback_quietly()
                if self._undo:
                    await self._compensate()
                elif self._outcome is None:
                    self._log("rolled_back", logging.INFO)
        finally:
            await self._opened.__aexit__(None, None, None)

    def _log(self, outcome: str, level: int) -> None:
        self._outcome = outcome
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        log.log(
            level,
            "tx op=%s outcome=%s n=%d ids=%s ms=%.1f",
            self.op,
            outcome,
            len(self.ids),
            _ids_text(self.ids),
            elapsed_ms,
        )
