"""Monthly partitions of ``usage_events`` on Postgres: created ahead, dropped whole by retention.

On Postgres ``usage_events`` is range-partitioned by ``created_at`` (migration ``c20b1550eba6``),
one partition per UTC month named ``usage_events_yYYYYmMM``, plus ``usage_events_default`` so an
insert never fails. The ledger (``ledger.py``) calls ``ensure_ahead`` at start and daily: the
current month and the next ``AHEAD`` exist (idempotent; a month whose partition exists costs one
catalogue read). Should rows have landed in the DEFAULT partition (the gateway was down for
months), creating their month moves them into it.

Retention (``purge``) drops partitions that lie entirely before the horizon (DETACH, then DROP:
no row-by-row delete, no bloat, no vacuum debt) and deletes the DEFAULT partition's old rows. On
Postgres a row can so outlive the horizon by up to a month. SQLite keeps one table and deletes
rows (``rollup.purge_events``). ``usage_daily`` is never touched: totals and budgets survive.

DDL waits at most ``LOCK_TIMEOUT`` for its lock, so a long report never queues the ledger's
inserts behind it; a round that times out is retried by the next one. An advisory lock keeps
two replicas from creating the same month at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.metering import rollup

log = logging.getLogger("relay.ledger")
PARENT = "usage_events"
DEFAULT = "usage_events_default"
AHEAD = 2
"""Months created beyond the current one."""
LOCK_TIMEOUT = "5s"
ADVISORY_KEY = 0x7265_6C61_7970_7431
"""``pg_advisory_xact_lock`` key of partition DDL (any constant; shared by every replica)."""
# Every name spliced into SQL below is one of these constants or a partition name built from a date.
_NAME = re.compile(r"^usage_events_y(\d{4})m(\d{2})$")


def month_of(when: datetime) -> date:
    """The first day of ``when``'s UTC month."""
    return when.astimezone(UTC).date().replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"usage_events_y{month.year:04d}m{month.month:02d}"


def month_of_partition(name: str) -> date | None:
    """The month a partition of ours holds; None for any other table."""
    found = _NAME.match(name)
    return date(int(found[1]), int(found[2]), 1) if found else None


def is_partition(name: str) -> bool:
    return name == DEFAULT or month_of_partition(name) is not None


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name`` hook: the partitions are the gateway's, not the models' (autogenerate skips them)."""
    return not (type_ == "table" and name is not None and is_partition(name))


def _bound(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'"


async def is_partitioned(session: AsyncSession) -> bool:
    """Whether this database has the partitioned ledger (Postgres after migration ``c20b1550eba6``)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    kind = await session.scalar(
        sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT}
    )
    return bool(kind == "p")


async def _tables(session: AsyncSession) -> dict[str, bool]:
    """Our partitions by name (attached or not, e.g. one a crash left detached), and whether attached."""
    rows = await session.execute(
        sa.text(
            "SELECT relname, relispartition FROM pg_class"
            " WHERE relkind = 'r' AND relname LIKE 'usage\\_events\\_%' AND pg_table_is_visible(oid)"
        )
    )
    return {name: attached for name, attached in rows if is_partition(name)}


async def _guard(session: AsyncSession) -> None:
    await session.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})


async def ensure_ahead(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None, ahead: int = AHEAD
) -> list[str]:
    """Create the DEFAULT partition and the months from ``now``'s to ``ahead`` later that are missing.

    Returns the partitions created (none on SQLite or an unpartitioned ledger).
    """
    async with sessions() as session:
        if not await is_partitioned(session):
            return []
        have = await _tables(session)
    first = month_of(now or datetime.now(UTC))
    wanted = [partition_name(add_months(first, n)) for n in range(ahead + 1)]
    created = []
    if DEFAULT not in have:
        async with sessions.begin() as session:
            await _guard(session)
            await session.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF {PARENT} DEFAULT"))
        created.append(DEFAULT)
    for name in wanted:
        if name not in have:
            month = month_of_partition(name)
            assert month is not None
            if await _create(sessions, month):
                created.append(name)
    if created:
        log.info("ledger: usage_events partitions created: %s", ", ".join(created))
    return created


async def _create(sessions: async_sessionmaker[AsyncSession], month: date) -> bool:
    name, lo, hi = partition_name(month), _bound(month), _bound(add_months(month, 1))
    async with sessions.begin() as session:
        await _guard(session)
        if await session.scalar(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": name}):
            return False  # another replica was first
        stray = f"FROM {DEFAULT} WHERE created_at >= {lo} AND created_at < {hi}"
        moving = await session.scalar(sa.text(f"SELECT EXISTS (SELECT 1 {stray})"))
        if moving:  # the DEFAULT partition holds rows of this month: it may not while the month is attached
            await session.execute(sa.text(f"ALTER TABLE {PARENT} DETACH PARTITION {DEFAULT}"))
        await session.execute(sa.text(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ({lo}) TO ({hi})"))
        if moving:
            move = f"WITH moved AS (DELETE {stray} RETURNING *) INSERT INTO {name} SELECT * FROM moved"  # noqa: S608
            result = await session.execute(sa.text(move))
            await session.execute(sa.text(f"ALTER TABLE {PARENT} ATTACH PARTITION {DEFAULT} DEFAULT"))
            moved = int(getattr(result, "rowcount", 0) or 0)
            log.warning("ledger: moved %d usage events from %s into %s", moved, DEFAULT, name)
    return True


@dataclass(frozen=True, slots=True)
class Dropped:
    partitions: tuple[str, ...]
    """Whole months dropped."""
    rows: int
    """Events they held, plus those deleted from the DEFAULT partition."""


async def drop_expired(
    sessions: async_sessionmaker[AsyncSession], retention_days: int, *, now: datetime | None = None
) -> Dropped:
    """Drop the partitions entirely older than ``retention_days`` (none when 0) and the DEFAULT partition's old rows."""
    if retention_days <= 0:
        return Dropped((), 0)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with sessions() as session:
        if not await is_partitioned(session):
            return Dropped((), 0)
        have = await _tables(session)
    expired = sorted(
        name
        for name in have
        if (month := month_of_partition(name)) is not None
        and datetime.combine(add_months(month, 1), datetime.min.time(), UTC) <= cutoff
    )
    rows = 0
    for name in expired:
        if have[name]:
            async with sessions.begin() as session:  # a short transaction: DETACH locks the parent
                await _guard(session)
                await session.execute(sa.text(f"ALTER TABLE {PARENT} DETACH PARTITION {name}"))
        async with sessions.begin() as session:  # detached: counting and dropping it blocks nobody
            rows += int(await session.scalar(sa.text(f"SELECT count(*) FROM {name}")) or 0)  # noqa: S608
            await session.execute(sa.text(f"DROP TABLE {name}"))
    if DEFAULT in have:
        async with sessions.begin() as session:
            old = sa.text(f"DELETE FROM {DEFAULT} WHERE created_at < :c")  # noqa: S608
            result = await session.execute(old, {"c": cutoff})
            rows += int(getattr(result, "rowcount", 0) or 0)
    if expired:
        log.info("ledger: retention dropped usage_events partitions %s (%d events)", ", ".join(expired), rows)
    return Dropped(tuple(expired), rows)


async def purge(sessions: async_sessionmaker[AsyncSession], retention_days: int, *, now: datetime | None = None) -> int:
    """Retention of ``usage_events``: whole partitions on partitioned Postgres, rows elsewhere. Events removed."""
    async with sessions() as session:
        partitioned = await is_partitioned(session)
    if partitioned:
        return (await drop_expired(sessions, retention_days, now=now)).rows
    return await rollup.purge_events(sessions, retention_days, now=now)
