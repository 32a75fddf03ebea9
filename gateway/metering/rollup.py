"""The daily rollup (``usage_daily``) and the retention of ``usage_events``.

``write_batch`` is the ledger's one write: in a single transaction it inserts a batch of events
(idempotent on ``request_id``), adds exactly the rows that went in (learned with ``RETURNING``) to
their ``usage_daily`` buckets, and stamps the keys' ``last_used_at``. A replayed batch inserts
nothing, so it counts nothing. ``purge_events`` deletes old events in small batches; the daily
rows stay, so totals and budgets survive the purge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import NO_KEY, ApiKey, Tenant, UsageDaily, UsageEvent
from gateway.metering.base import UsageRecord

COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_micro_usd",
)
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


def is_error(status: int) -> bool:
    """The ``error`` status class of the request log and of ``usage_daily.errors``."""
    return status >= 400


def _clip(value: str | None, size: int) -> str | None:
    return value if value is None or len(value) <= size else value[:size]


def _int(value: int | None, top: int = _INT32) -> int | None:
    return value if value is None else max(-top, min(int(value), top))


def event_row(rec: UsageRecord) -> dict[str, Any]:
    """The ``usage_events`` row of a record, clipped to the columns' sizes (a bad value never blocks a batch)."""
    u = rec.usage
    return {
        "request_id": _clip(rec.request_id, 64),
        "created_at": rec.created_at,
        "tenant_id": _clip(rec.tenant_id, 32),
        "key_id": _clip(rec.key_id, 32),
        "model": _clip(rec.model, 200),
        "upstream_id": _clip(rec.upstream_id, 32),
        "upstream_key_id": _clip(rec.upstream_key_id, 32),
        "door_dialect": _clip(rec.door_dialect, 20),
        "upstream_dialect": _clip(rec.upstream_dialect, 20),
        "stream": rec.stream,
        "input_tokens": _int(u.input_tokens),
        "output_tokens": _int(u.output_tokens),
        "cache_read_tokens": _int(u.cache_read_tokens),
        "cache_write_tokens": _int(u.cache_write_tokens),
        "estimated": u.estimated,
        "cost_micro_usd": _int(rec.cost_micro_usd, _INT64),
        "status": _int(rec.status),
        "error_code": _clip(rec.error_code, 64),
        "latency_ms": _int(rec.latency_ms),
        "ttft_ms": _int(rec.ttft_ms),
        "attempts": max(1, min(rec.attempts, 32_767)),
        "served_model": _clip(rec.served_model, 200),
        "conversion_notes": _clip(",".join(rec.conversion_notes), 1000) or None,
        **({"asked_model": _clip(rec.asked_model, 200)} if rec.asked_model else {}),
    }


def utc_day(when: datetime) -> date:
    return when.astimezone(UTC).date()


def daily_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event rows summed into their (tenant, day, key, model) buckets, in a stable order (no deadlocks)."""
    buckets: dict[tuple[str, date, str, str], dict[str, Any]] = {}
    for row in rows:
        bucket = (row["tenant_id"], utc_day(row["created_at"]), row["key_id"] or NO_KEY, row["model"])
        acc = buckets.get(bucket)
        if acc is None:
            acc = buckets[bucket] = dict(zip(("tenant_id", "day", "key_id", "model"), bucket, strict=True))
            acc.update(dict.fromkeys(COUNTERS, 0))
        acc["requests"] += 1
        acc["errors"] += int(is_error(row["status"]))
        for name in COUNTERS[2:]:
            acc[name] += row[name]
    return [buckets[b] for b in sorted(buckets)]


@dataclass(frozen=True, slots=True)
class Written:
    inserted: int
    """Events that went in; the others of the batch were already in the ledger (a replay)."""
    buckets: int


def _insert_for(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def write_batch(session: AsyncSession, batch: Sequence[UsageRecord]) -> Written:
    """Insert events, roll up the ones inserted and stamp ``last_used_at``: call inside one transaction."""
    insert = _insert_for(session.get_bind().dialect.name)
    rows: dict[str, dict[str, Any]] = {}
    for rec in batch:  # a request id twice in one batch is one event
        row = event_row(rec)
        rows.setdefault(row["request_id"], row)
    if not rows:
        return Written(0, 0)
    if any("asked_model" in row for row in rows.values()):
        # Executemany takes its columns from the first row: every row gets them all. A batch without an
        # aliased request inserts the columns it did before migration a41c7d2e9b58, which lets the tests of
        # older migrations write through this ledger on their schemas.
        for row in rows.values():
            row.setdefault("asked_model", None)
    # Executemany of one cached statement (SQLAlchemy batches it as "insertmanyvalues"): a multi-row
    # .values() would be compiled anew for every batch, which profiled as a fifth of the gateway's CPU.
    # The Core table, not the ORM entity: the ORM's bulk-insert bookkeeping costs more than the insert itself.
    # No conflict target: the request id's uniqueness is (request_id) on SQLite and on Postgres before
    # migration c20b1550eba6, (request_id, created_at) on the partitioned ledger after it (a partitioned
    # table's unique constraints hold its partition key). A replayed record carries its original
    # created_at, so it conflicts on either; the only other unique key, the sequence's id, never does.
    events = UsageEvent.__table__
    stmt = insert(events).on_conflict_do_nothing().returning(events.c.request_id)
    inserted = set((await session.execute(stmt, list(rows.values()))).scalars())
    fresh = [row for rid, row in rows.items() if rid in inserted]
    if not fresh:
        return Written(0, 0)
    daily = daily_rows(fresh)
    up = insert(UsageDaily.__table__)
    await session.execute(
        up.on_conflict_do_update(
            index_elements=["tenant_id", "day", "key_id", "model"],
            set_={name: getattr(UsageDaily, name) + getattr(up.excluded, name) for name in COUNTERS},
        ),
        daily,
    )
    await stamp_last_used(session, fresh)
    return Written(len(fresh), len(daily))


async def stamp_last_used(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """One ``UPDATE api_keys`` per batch: every key seen gets the batch's latest request time (never earlier)."""
    key_ids = sorted({row["key_id"] for row in rows if row["key_id"]})
    if not key_ids:
        return
    latest = max(row["created_at"] for row in rows)
    await session.execute(
        sa.update(ApiKey)
        .where(
            ApiKey.id.in_(key_ids),
            sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < latest),
        )
        .values(last_used_at=latest)
        .execution_options(synchronize_session=False)
    )


async def spent_since(session: AsyncSession, kind: str, owner: str, since: datetime | None) -> int:
    """Micro-USD a key (``kind`` ``key``) or tenant spent since ``since`` (all time when None).

    From ``usage_daily`` when ``since`` is a UTC midnight (budget periods are), so it survives the
    retention of events; otherwise from the events themselves.
    """
    if since is None or since.astimezone(UTC).time() == datetime.min.time():
        column = UsageDaily.key_id if kind == "key" else UsageDaily.tenant_id
        query = sa.select(sa.func.coalesce(sa.func.sum(UsageDaily.cost_micro_usd), 0)).where(column == owner)
        if since is not None:
            query = query.where(UsageDaily.day >= utc_day(since))
    else:
        ecol = UsageEvent.key_id if kind == "key" else UsageEvent.tenant_id
        query = sa.select(sa.func.coalesce(sa.func.sum(UsageEvent.cost_micro_usd), 0)).where(
            ecol == owner, UsageEvent.created_at >= since
        )
    return int(await session.scalar(query) or 0)


async def spent_by(session: AsyncSession, kind: str, owners: Iterable[str], since: datetime | None) -> dict[str, int]:
    """``spent_since`` of many keys (``kind`` ``key``) or tenants at once, from ``usage_daily``: one grouped query
    per thousand owners. ``since`` must be a UTC midnight (budget periods are) or None (all time)."""
    column = UsageDaily.key_id if kind == "key" else UsageDaily.tenant_id
    ids = sorted(set(owners))
    out: dict[str, int] = {}
    for i in range(0, len(ids), 1000):
        query = sa.select(column, sa.func.sum(UsageDaily.cost_micro_usd)).where(column.in_(ids[i : i + 1000]))
        if since is not None:
            query = query.where(UsageDaily.day >= utc_day(since))
        out.update({owner: int(total or 0) for owner, total in await session.execute(query.group_by(column))})
    return out


PURGE_BATCH = 5000


async def purge_events(
    sessions: async_sessionmaker[AsyncSession],
    retention_days: int,
    *,
    now: datetime | None = None,
    batch: int = PURGE_BATCH,
    pause_s: float = 0.05,
) -> int:
    """Delete events older than ``retention_days`` (none when 0), tenant by tenant, ``batch`` rows a transaction.

    Each delete walks ``ix_usage_events_tenant_time``, so it is cheap on a table of millions of rows;
    short transactions keep the ledger's inserts flowing meanwhile. ``usage_daily`` is untouched.
    """
    if retention_days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with sessions() as session:
        tenant_ids = set(await session.scalars(sa.select(Tenant.id)))
        tenant_ids |= set(await session.scalars(sa.select(UsageDaily.tenant_id).distinct()))
    deleted = 0
    for tenant_id in sorted(tenant_ids):
        while True:
            old = (
                sa.select(UsageEvent.id)
                .where(UsageEvent.tenant_id == tenant_id, UsageEvent.created_at < cutoff)
                .limit(batch)
                .scalar_subquery()
            )
            async with sessions.begin() as session:
                result = await session.execute(sa.delete(UsageEvent).where(UsageEvent.id.in_(old)))
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < batch:
                break
            await asyncio.sleep(pause_s)
    return deleted
