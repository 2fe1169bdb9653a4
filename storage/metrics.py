"""Prometheus metrics of this process, on a registry of their own (served by bot.ops_http).

Counters and histograms are module-level objects: the code that counts imports them (the bot
through `engine.metrics`). They live on `REGISTRY`, not on prometheus_client's global one, so
nothing else registered in the process (a library, a second registry in a test) collides with
them; several bots in one process share them, as a process's metrics do. What is state rather
than an event (inbox depth, breakers, sweep drift, broadcast and reminder progress) is read at
scrape time: `STATE.state` is set just before each scrape and yielded by `StateCollector`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditRow, BroadcastDeliveryRow, BroadcastRow, ReminderRow
from storage.repositories.inbox import InboxRepository
from storage.repositories.reminders import SCHEDULED

REGISTRY = CollectorRegistry()
OUTCOMES = ("committed", "rolled_back", "compensated", "compensation_failed")
STORES = ("sql", "vectors")

UPDATES_RECEIVED = Counter(
    "memorybot_updates_received",
    "Updates newly stored in the inbox (webhook or polling; redeliveries not counted).",
    registry=REGISTRY,
)
UPDATES_PROCESSED = Counter(
    "memorybot_updates_processed", "Updates processed to the end (done).", registry=REGISTRY
)
UPDATES_PARKED = Counter(
    "memorybot_updates_parked", "Updates parked as dead letters.", registry=REGISTRY
)
WORKERS_RUNNING = Gauge(
    "memorybot_workers_running",
    "Bot processes whose inbox heartbeat is fresh, as this one saw at its last beat.",
    registry=REGISTRY,
)
SEND_BUDGET = Gauge(
    "memorybot_send_budget_per_second",
    "Messages a second this process may send: TELEGRAM_MAX_RATE // workers (0: no limit).",
    registry=REGISTRY,
)
UPDATE_SECONDS = Histogram(
    "memorybot_update_processing_seconds",
    "Time to run one update through the handlers (each attempt).",
    registry=REGISTRY,
)
LOOP_LAG_SECONDS = Histogram(
    "memorybot_event_loop_lag_seconds",
    "How late the event loop woke a timer due every 0.1 s (work that holds the loop).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
ENCODE_SECONDS = Histogram(
    "memorybot_encode_seconds", "Time to encode one batch of texts.", registry=REGISTRY
)
VECTOR_WRITE_SECONDS = Histogram(
    "memorybot_vector_write_seconds",
    "Time of one vector write (upsert or delete) inside a unit of work.",
    registry=REGISTRY,
)
TRANSACTIONS = Counter(
    "memorybot_transactions",
    "Units of work by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
SQL_COMMITS = Counter(
    "memorybot_sql_commits",
    "SQL transactions committed (each one a write transaction: reads roll back).",
    registry=REGISTRY,
)
SQL_STATEMENTS = Counter(
    "memorybot_sql_statements",
    "SQL statements sent to the database, by kind (count: a SELECT count(...)).",
    ["kind"],
    registry=REGISTRY,
)
BREAKER_OPENED = Counter(
    "memorybot_breaker_opened",
    "Times a store's circuit breaker opened.",
    ["store"],
    registry=REGISTRY,
)
for _kind in ("count", "other"):
    SQL_STATEMENTS.labels(_kind)
for _outcome in OUTCOMES:
    TRANSACTIONS.labels(_outcome)
for _store in STORES:
    BREAKER_OPENED.labels(_store)


@dataclass(frozen=True)
class SqlState:
    """What SQL says at scrape time."""

    inbox_pending: int
    inbox_oldest_age_s: float
    broadcasts: dict[str, int]  # broadcasts by status
    deliveries: dict[str, int]  # deliveries of unfinished broadcasts, by status
    reminders: dict[str, int]  # reminders by status
    reminders_overdue: int  # scheduled and due, not yet claimed for sending
    sweep: dict[str, int]  # the last sweep's counts (empty before the first)
    sweep_at: float | None  # when it ran (unix time)


@dataclass(frozen=True)
class State:
    """The state shown by the next scrape: breakers open (by store) and the SQL state, if
    SQL answered."""

    breakers: dict[str, bool] = field(default_factory=dict)
    sql: SqlState | None = None


async def read_sql_state(session: AsyncSession, *, now: datetime, sweep_action: str) -> SqlState:
    """Count what the state gauges show, in one read session (cheap, indexed queries)."""
    pending, oldest = await InboxRepository(session).depth()
    by_status = BroadcastRow.status
    broadcasts = await session.execute(select(by_status, func.count()).group_by(by_status))
    deliveries = await session.execute(
        select(BroadcastDeliveryRow.status, func.count())
        .join(BroadcastRow, BroadcastRow.id == BroadcastDeliveryRow.broadcast_id)
        .where(BroadcastRow.finished_at.is_(None))
        .group_by(BroadcastDeliveryRow.status)
    )
    reminders = await session.execute(
        select(ReminderRow.status, func.count()).group_by(ReminderRow.status)
    )
    overdue = await session.scalar(
        select(func.count()).where(ReminderRow.status == SCHEDULED, ReminderRow.due_at <= now)
    )
    sweep = (
        await session.execute(
            select(AuditRow.at, AuditRow.details)
            .where(AuditRow.action == sweep_action)
            .order_by(AuditRow.id.desc())
            .limit(1)
        )
    ).first()
    counts = {k: int(v) for k, v in (sweep[1] or {}).items() if k != "ms"} if sweep else {}
    return SqlState(
        inbox_pending=pending,
        inbox_oldest_age_s=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        broadcasts={str(s): int(n) for s, n in broadcasts.all()},
        deliveries={str(s): int(n) for s, n in deliveries.all()},
        reminders={str(s): int(n) for s, n in reminders.all()},
        reminders_overdue=int(overdue or 0),
        sweep=counts,
        sweep_at=sweep[0].timestamp() if sweep else None,
    )


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class StateCollector(Collector):
    """Yields the gauges of `state` (set by the scrape handler right before collecting)."""

    def __init__(self) -> None:
        self.state = State()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        state = self.state
        yield _labelled(
            "memorybot_breaker_open",
            "1 while the store's circuit breaker is open.",
            "store",
            {store: int(is_open) for store, is_open in state.breakers.items()},
        )
        sql = state.sql
        if sql is None:  # SQL did not answer: no stale numbers
            return
        yield GaugeMetricFamily(
            "memorybot_inbox_pending", "Updates waiting in the inbox.", value=sql.inbox_pending
        )
        yield GaugeMetricFamily(
            "memorybot_inbox_oldest_age_seconds",
            "Age of the oldest pending update (0 when none waits).",
            value=sql.inbox_oldest_age_s,
        )
        yield _labelled("memorybot_broadcasts", "Broadcasts by status.", "status", sql.broadcasts)
        yield _labelled(
            "memorybot_broadcast_deliveries",
            "Deliveries of unfinished broadcasts, by status.",
            "status",
            sql.deliveries,
        )
        yield _labelled("memorybot_reminders", "Reminders by status.", "status", sql.reminders)
        yield GaugeMetricFamily(
            "memorybot_reminders_overdue",
            "Scheduled reminders already due.",
            value=sql.reminders_overdue,
        )
        yield _labelled(
            "memorybot_sweep_drift", "Drift found by the last sweep, by kind.", "kind", sql.sweep
        )
        if sql.sweep_at is not None:
            yield GaugeMetricFamily(
                "memorybot_sweep_last_timestamp_seconds",
                "When the last sweep ran (unix time).",
                value=sql.sweep_at,
            )


STATE = StateCollector()
REGISTRY.register(STATE)
