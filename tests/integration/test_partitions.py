"""The ledger partitioned by month on Postgres: the migration keeps every row (and back), inserts land in
their month, replays stay ignored, partitions ahead are idempotent, retention drops whole months and
keeps the rollups. SQLite: the migration changes nothing and retention deletes rows as before."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from support import create_postgres_database, drop_postgres_database, service_missing

from gateway.db.session import alembic_config
from gateway.domain import Usage
from gateway.manage import usage
from gateway.metering import Ledger, UsageRecord, partitions
from gateway.metering.partitions import add_months, month_of, partition_name

BEFORE = "7e3a9b1c5d20"
"""The revision before the partitioned ledger."""
PARTITIONED = "c20b1550eba6"
"""The partitioned ledger's own revision (later ones add columns)."""
NOW = datetime.now(UTC)
THIS_MONTH = month_of(NOW)
# Fixed past months (whatever today is), the 15th at noon, two events each, one tenant.
MONTHS = [datetime(2026, m, 15, 12, tzinfo=UTC) for m in (6, 7, 8, 9)]
TENANT = "t-partitions"


def rec(at: datetime, **kw: Any) -> UsageRecord:
    return UsageRecord(
        request_id=kw.pop("request_id", f"r-{secrets.token_hex(8)}"),
        tenant_id=TENANT,
        key_id=None,
        model="m",
        upstream_id=None,
        door_dialect="openai",
        upstream_dialect="openai",
        stream=False,
        usage=Usage(input_tokens=3, output_tokens=4),
        cost_micro_usd=10,
        status=200,
        latency_ms=5,
        created_at=at,
        **kw,
    )


def replayed(r: UsageRecord) -> UsageRecord:
    """The record as the spool or the Redis handoff gives it back (msgspec JSON, as they store it)."""
    return msgspec.json.decode(msgspec.json.encode(r), type=UsageRecord)


@pytest.fixture
def pg_url() -> Iterator[str]:
    try:
        url = create_postgres_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    drop_postgres_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"


async def migrate(url: str, revision: str, *, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    await asyncio.to_thread(step, alembic_config(url), revision)


@pytest.fixture
async def sessions_of() -> AsyncIterator[Any]:
    engines: list[Any] = []

    def make(url: str) -> async_sessionmaker[AsyncSession]:
        engines.append(create_async_engine(url, poolclass=NullPool))
        return async_sessionmaker(engines[-1], expire_on_commit=False)

    yield make
    for engine in engines:
        await engine.dispose()


async def scalar(sessions: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> Any:
    async with sessions() as s:
        return await s.scalar(sa.text(sql), params)


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple[int, datetime, str]]:
    """request id → (id, created_at, the table holding the row)."""
    async with sessions() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        table = "tableoid::regclass::text" if pg else "'usage_events'"
        found = await s.execute(sa.text(f"SELECT request_id, id, created_at, {table} FROM usage_events"))
        return {rid: (row_id, as_utc(at), table) for rid, row_id, at, table in found}


def as_utc(at: datetime | str) -> datetime:
    """A created_at read by raw SQL (SQLite gives the stored text)."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


async def daily(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as s:
        found = (await s.execute(sa.text("SELECT sum(requests), sum(cost_micro_usd) FROM usage_daily"))).one()
        return int(found[0] or 0), int(found[1] or 0)


async def seeded(sessions: async_sessionmaker[AsyncSession]) -> list[UsageRecord]:
    """Two events in each of MONTHS and one now, written by the ledger (on the schema of the moment)."""
    records = [rec(at + timedelta(hours=h)) for at in MONTHS for h in (0, 1)] + [rec(NOW)]
    written = await Ledger(sessions).write(records)
    assert written.inserted == len(records)
    return records


async def test_upgrade_partitions_every_row_by_month_and_keeps_the_ids(pg_url, sessions_of):
    await migrate(pg_url, BEFORE)
    sessions = sessions_of(pg_url)
    records = await seeded(sessions)
    before = await rows(sessions)
    assert {table for _, _, table in before.values()} == {"usage_events"}

    await migrate(pg_url, "head")
    assert await scalar(sessions, "SELECT relkind::text FROM pg_class WHERE relname = 'usage_events'") == "p"
    after = await rows(sessions)
    assert {rid: (i, at) for rid, (i, at, _) in after.items()} == {rid: (i, at) for rid, (i, at, _) in before.items()}
    for _, at, table in after.values():
        assert table == partition_name(month_of(at))
    for n in range(partitions.AHEAD + 1):  # the migration made the months ahead too
        assert await scalar(sessions, "SELECT to_regclass(:t) IS NOT NULL", t=partition_name(add_months(THIS_MONTH, n)))
    assert await scalar(sessions, "SELECT to_regclass('usage_events_default') IS NOT NULL")

    # queryable as before: the request log, newest first, paged by keyset across partitions
    q = usage.UsageQuery.of(TENANT, MONTHS[0] - timedelta(days=1), NOW + timedelta(seconds=1))
    async with sessions() as s:
        first = await usage.requests_page(s, q, limit=4)
        second = await usage.requests_page(s, q, cursor=first.next_cursor, limit=10)
    assert [r.request_id for r in first.rows + second.rows] == [
        r.request_id for r in sorted(records, key=lambda r: r.created_at, reverse=True)
    ]


async def test_inserts_land_in_their_month_and_a_replay_is_still_ignored(pg_url, sessions_of):
    await migrate(pg_url, BEFORE)
    sessions = sessions_of(pg_url)
    records = await seeded(sessions)
    top = max(i for i, _, _ in (await rows(sessions)).values())
    await migrate(pg_url, "head")
    ledger = Ledger(sessions)

    fresh = [rec(NOW), rec(MONTHS[2] + timedelta(days=3)), rec(datetime(2001, 1, 1, tzinfo=UTC))]
    assert (await ledger.write(fresh)).inserted == 3
    found = await rows(sessions)
    assert found[fresh[0].request_id][2] == partition_name(THIS_MONTH)
    assert found[fresh[1].request_id][2] == partition_name(month_of(MONTHS[2]))
    assert found[fresh[2].request_id][2] == "usage_events_default"  # no month for it: never refused
    assert min(found[r.request_id][0] for r in fresh) > top  # the id sequence went on

    totals = await daily(sessions)
    again = [replayed(r) for r in records[:3] + fresh]  # as the spool replays them, old and new
    assert again[0] == records[0]
    assert (await ledger.write(again)).inserted == 0
    assert len(await rows(sessions)) == len(records) + len(fresh)
    assert await daily(sessions) == totals


async def test_partitions_ahead_are_idempotent_and_take_their_rows_from_the_default(pg_url, sessions_of):
    await migrate(pg_url, "head")
    sessions = sessions_of(pg_url)
    assert await partitions.ensure_ahead(sessions) == []  # the migration made them

    later = add_months(THIS_MONTH, 7)
    at = datetime(later.year, later.month, 2, tzinfo=UTC)
    stray = rec(at)
    await Ledger(sessions).write([stray])
    assert (await rows(sessions))[stray.request_id][2] == "usage_events_default"

    created = await partitions.ensure_ahead(sessions, now=at)
    assert created == [partition_name(add_months(later, n)) for n in range(3)]
    assert (await rows(sessions))[stray.request_id][2] == partition_name(later)  # moved out of the default
    assert await partitions.ensure_ahead(sessions, now=at) == []
    assert await partitions.ensure_ahead(sessions) == []

    # the ledger's own maintenance task creates a missing month at start
    gone = partition_name(add_months(THIS_MONTH, 2))
    async with sessions.begin() as s:
        await s.execute(sa.text(f"DROP TABLE {gone}"))
    ledger = Ledger(sessions, "postgresql")
    ledger.start()
    deadline = time.monotonic() + 10
    while not await scalar(sessions, "SELECT to_regclass(:t) IS NOT NULL", t=gone) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await ledger.close()
    assert await scalar(sessions, "SELECT to_regclass(:t) IS NOT NULL", t=gone)


async def test_retention_drops_whole_old_months_and_keeps_the_rollups(pg_url, sessions_of):
    await migrate(pg_url, BEFORE)
    sessions = sessions_of(pg_url)
    await seeded(sessions)
    await migrate(pg_url, "head")
    old_default = rec(datetime(2001, 1, 1, tzinfo=UTC))
    await Ledger(sessions).write([old_default])
    totals = await daily(sessions)

    # horizon 2026-08-21: June and July end before it (dropped), August straddles it (kept whole)
    now = datetime(2026, 9, 20, tzinfo=UTC)
    dropped = await partitions.drop_expired(sessions, 30, now=now)
    assert dropped == partitions.Dropped(("usage_events_y2026m06", "usage_events_y2026m07"), 5)
    left = await rows(sessions)
    assert sorted(at.month for _, at, _ in left.values() if at < now) == [8, 8, 9, 9]
    assert old_default.request_id not in left  # the DEFAULT partition's old rows are deleted
    for name in dropped.partitions:
        assert not await scalar(sessions, "SELECT to_regclass(:t) IS NOT NULL", t=name)
    assert await daily(sessions) == totals  # budgets and totals read the rollup
    assert await partitions.purge(sessions, 30, now=now) == 0  # nothing more to drop
    assert await partitions.purge(sessions, 0, now=now) == 0  # 0: keep forever

    # a partition a crash left detached (between DETACH and DROP) goes on the next round
    async with sessions.begin() as s:
        await s.execute(sa.text("ALTER TABLE usage_events DETACH PARTITION usage_events_y2026m08"))
    assert (await partitions.drop_expired(sessions, 30, now=datetime(2026, 11, 5, tzinfo=UTC))).partitions == (
        "usage_events_y2026m08",
        "usage_events_y2026m09",
    )
    assert [at for _, at, _ in (await rows(sessions)).values()] == [NOW]  # only this month's row is left


async def test_downgrade_returns_to_one_table_with_every_row(pg_url, sessions_of):
    await migrate(pg_url, BEFORE)
    sessions = sessions_of(pg_url)
    await seeded(sessions)
    await migrate(pg_url, "head")
    extra = rec(NOW)
    await Ledger(sessions).write([extra])
    partitioned = await rows(sessions)

    await migrate(pg_url, BEFORE, down=True)
    assert await scalar(sessions, "SELECT relkind::text FROM pg_class WHERE relname = 'usage_events'") == "r"
    assert await scalar(sessions, r"SELECT count(*) FROM pg_class WHERE relname ~ '^usage_events_(y\d|default)'") == 0
    back = await rows(sessions)
    assert {rid: (i, at) for rid, (i, at, _) in back.items()} == {
        rid: (i, at) for rid, (i, at, _) in partitioned.items()
    }
    assert (await Ledger(sessions).write([replayed(extra), rec(NOW)])).inserted == 1  # old shape, same dedupe
    await migrate(pg_url, "head")  # and up again
    assert len(await rows(sessions)) == len(back) + 1


async def test_sqlite_migration_changes_nothing_and_retention_deletes_rows(sqlite_url, sessions_of):
    await migrate(sqlite_url, BEFORE)
    sessions = sessions_of(sqlite_url)
    schema = "SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name = 'usage_events'"
    shape = await scalar(sessions, schema)
    records = await seeded(sessions)
    await migrate(sqlite_url, PARTITIONED)
    assert await scalar(sessions, schema) == shape
    assert len(await rows(sessions)) == len(records)
    assert await partitions.ensure_ahead(sessions) == []
    assert (await Ledger(sessions).write([replayed(records[0])])).inserted == 0

    totals = await daily(sessions)
    # horizon 2026-08-21, by the row: June, July and August's 15th go, even within a month
    assert await partitions.purge(sessions, 30, now=datetime(2026, 9, 20, tzinfo=UTC)) == 6
    left = sorted(at for _, at, _ in (await rows(sessions)).values())
    assert left == [MONTHS[3], MONTHS[3] + timedelta(hours=1), NOW]
    assert await daily(sessions) == totals
