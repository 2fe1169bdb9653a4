"""The unit of work: the one place a transaction is opened, written and committed.

`async with stores.unit_of_work("op") as uow:` is the transaction (`session.begin()`
semantics): leaving the block normally flushes and commits; leaving it by an exception rolls
SQL back and undoes every vector write made inside it. Memory writes follow
flush → vector write → commit; if the commit fails the vector writes are compensated.
A SQL-only write is the same block without vector steps.
A failed vector write is VectorWriteFailed (its undo is best effort: no row was committed);
CompensationFailed only says that a vector write which succeeded could not be undone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import (
    CommitFailed,
    CompensationFailed,
    SqlWriteFailed,
    VectorWriteFailed,
    translate,
)
from engine.faults import Faults, Step
from engine.vector_index import VectorIndex, VectorRecord, VectorRef
from storage.db import WriteSessions
from storage.metrics import TRANSACTIONS, VECTOR_WRITE_SECONDS
from storage.repositories import Repositories

log = logging.getLogger("memorybot.tx")
COMPENSATION_ATTEMPTS = 3
COMPENSATION_BACKOFF_S = 0.05
Undo = Callable[[], Awaitable[None]]


class UnitOfWork(Repositories):
    """One AsyncSession, its repositories, and the compensations of its vector writes."""

    session: AsyncSession

    def __init__(
        self, sessions: WriteSessions, vectors: VectorIndex, *, op: str, faults: Faults | None
    ) -> None:
        self._sessions = sessions
        self._vectors = vectors
        self._faults = faults or Faults()
        self.op = op
        self.ids: list[str] = []
        self._undo: list[Undo] = []
        self._failed_write: Undo | None = None  # the undo of a vector write that raised
        self.committed = False
        self._started = 0.0

    async def __aenter__(self) -> Self:
        self._opened = self._sessions()
        self.session = await self._opened.__aenter__()
        super().__init__(self.session)
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
        except IntegrityError as error:
            raise translate(self.op, self.ids, error) from error
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

    async def _vector_write(self, undo: Undo, write: Callable[[], Awaitable[None]]) -> None:
        self._undo.append(undo)  # registered first: a write that fails half-way is undone too
        try:
            self._faults.check(Step.VECTOR_WRITE)
            with VECTOR_WRITE_SECONDS.time():
                await write()
        except Exception as error:
            self._failed_write = undo
            raise VectorWriteFailed(self.op, self.ids, error) from error

    async def _commit(self) -> None:
        """Step 3: make the rows durable; on failure undo the vector writes and raise."""
        flushed = False
        try:
            await self.session.flush()  # what the block left pending (no seam: not a step)
            flushed = True
            self._faults.check(Step.COMMIT)
            await self.session.commit()
        except Exception as error:
            await self._rollback_quietly()
            await self._compensate()
            if flushed:
                raise CommitFailed(self.op, self.ids, error) from error
            if isinstance(error, IntegrityError):
                raise translate(self.op, self.ids, error) from error
            raise SqlWriteFailed(self.op, self.ids, error) from error
        self.committed = True
        self._log("committed", logging.INFO)

    async def _compensate(self) -> None:
        """Undo the vector writes, newest first, retrying each; raise if one cannot be undone.

        Only the undo of the write that failed is best effort, tried once (the write may have
        landed): if it fails, what it left belongs to no committed row and the sweep deletes
        it, so it is logged as deferred and the VectorWriteFailed stands.
        """
        undo, self._undo = self._undo, []
        deferred: Exception | None = None
        for step in reversed(undo):
            best_effort = step is self._failed_write
            attempts = 1 if best_effort else COMPENSATION_ATTEMPTS
            for attempt in range(attempts):
                try:
                    self._faults.check(Step.COMPENSATION)
                    await step()
                    break
                except Exception as error:
                    if attempt < attempts - 1:
                        await asyncio.sleep(COMPENSATION_BACKOFF_S * 2**attempt)
                    elif best_effort:
                        deferred = error
                    else:
                        self._log("compensation_failed", logging.ERROR, error)
                        raise CompensationFailed(self.op, self.ids, error) from error
        if deferred is not None:
            self._log("rolled_back", logging.WARNING, deferred, " compensation=deferred")
        elif undo:
            self._log("compensated", logging.WARNING)
        else:
            self._log("rolled_back", logging.INFO)

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
            if exc is None:
                await self._commit()
                return
            await self._rollback_quietly()
            await self._compensate()
            if isinstance(exc, IntegrityError):  # an autoflush inside the block
                raise translate(self.op, self.ids, exc) from exc
        finally:
            await self._opened.__aexit__(None, None, None)

    def _log(
        self, outcome: str, level: int, error: Exception | None = None, note: str = ""
    ) -> None:
        """The one line per transaction outcome: ids and error type, never a memory's text."""
        TRANSACTIONS.labels(outcome).inc()
        if not self.ids and level == logging.INFO:
            level = logging.DEBUG  # SQL-only bookkeeping: no memory changed
        shown = ",".join(self.ids[:10]) + (f",+{len(self.ids) - 10}more" if self.ids[10:] else "")
        cause = f" error={type(error).__name__}" if error is not None else ""
        elapsed = f"{(time.perf_counter() - self._started) * 1000:.1f}"
        line = "tx op=%s outcome=%s%s n=%d ids=%s ms=%s%s"
        log.log(level, line, self.op, outcome, note, len(self.ids), shown, elapsed, cause)


InSameUnit = Callable[[UnitOfWork], Awaitable[None]]  # more work for an action's own unit of work


def in_turn(*steps: InSameUnit | None) -> InSameUnit | None:
    """The given steps as one, run one after the other (None when none is given)."""
    given = [step for step in steps if step is not None]
    if len(given) <= 1:
        return given[0] if given else None

    async def run(uow: UnitOfWork) -> None:
        for step in given:
            await step(uow)

    return run
