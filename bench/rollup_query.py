"""How long a month of a tenant's usage takes to read, with a big ledger around it (Postgres).

    .venv/bin/python bench/rollup_query.py [--events 2000000] [--tenants 2000] [--repeat 30]

Creates a scratch database (dropped at the end), migrates it, and fills it with ``generate_series``
SQL (seconds, not hours): a month of ``usage_daily`` rows for one tenant (50 keys x 10 models x 30
days) and for ``--tenants`` others, plus ``--events`` ledger rows of that tenant. Then it times,
through ``gateway.manage.usage`` itself: the month's totals, the breakdowns by day, model and key,
the first and a deep page of the request log, and (once, for contrast) the same totals summed
from ``usage_events``. Prints the figures; asserts nothing. Figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.db.session import migrate
from gateway.db.tables import UsageEvent
from gateway.manage import usage
from gateway.settings import normalise_database_url

PG_ADMIN_URL = os.environ.get("RELAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TENANT = "bench0000000000000000000000tenant"[:32]
KEYS, MODELS, DAYS = 50, 10, 30


async def fill(url: str, events: int, tenants: int, start: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO usage_daily (tenant_id, day, key_id, model, requests, errors, input_tokens, output_tokens,
                                     cache_read_tokens, cache_write_tokens, cost_micro_usd)
            SELECT CASE WHEN t = 0 THEN $1 ELSE 'other' || t END, $2::date + d,
                   'key' || k, 'model-' || m, 1000, 10, 500000, 200000, 100000, 5000, 123456
            FROM generate_series(0, $3) t, generate_series(0, $4 - 1) d,
                 generate_series(0, $5 - 1) k, generate_series(0, $6 - 1) m
            WHERE t = 0 OR (k < 2 AND m < 3)
            """,
            TENANT, start.date(), tenants, DAYS, KEYS, MODELS,
        )  # fmt: skip
        t1 = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO usage_events (request_id, created_at, tenant_id, key_id, model, upstream_id, door_dialect,
                                      upstream_dialect, stream, input_tokens, output_tokens, cache_read_tokens,
                                      cache_write_tokens, estimated, cost_micro_usd, status, error_code, latency_ms)
            SELECT 'bench-' || g, $2::timestamptz + g * ($3 * 86400.0 / $4) * interval '1 second', $1,
                   'key' || (g % $5), 'model-' || (g % $6), NULL, 'anthropic', 'openai', g % 2 = 0,
                   500, 200, 100, 5, false, 1234, CASE WHEN g % 97 = 0 THEN 502 ELSE 200 END,
                   CASE WHEN g % 97 = 0 THEN 'upstream_error' END, 350
            FROM generate_series(0, $4 - 1) g
            """,
            TENANT, start, DAYS, events, KEYS, MODELS,
        )  # fmt: skip
        t2 = time.perf_counter()
        await conn.execute("ANALYZE usage_daily; ANALYZE usage_events")
        daily = await conn.fetchval("SELECT count(*) FROM usage_daily")
        print(f"filled: {daily:,} usage_daily rows in {t1 - t0:.1f} s, {events:,} usage_events in {t2 - t1:.1f} s")
    finally:
        await conn.close()


async def timings(repeat: int, fn: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    """``fn`` awaited ``repeat`` times after one warm-up call (the cache, the connection): the times in ms,
    sorted, and its last result."""
    result = await fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times), result


async def timed(repeat: int, fn: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """Median and 95th percentile (ms), and the last result."""
    times, result = await timings(repeat, fn)
    return statistics.median(times), times[int(len(times) * 0.95) - 1], result


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh, migrated Postgres database for one benchmark (its URL), dropped afterwards."""
    name = f"relay_bench_{secrets.token_hex(4)}"
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        url = urlsplit(admin)._replace(path="/" + name).geturl()
        migrate(normalise_database_url(url))
        yield url
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def measure(url: str, repeat: int, start: datetime) -> None:
    engine = create_async_engine(url, pool_size=2)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    month = usage.UsageQuery.of(TENANT, start, start + timedelta(days=DAYS))

    def in_session(fn: Callable[[AsyncSession], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            async with sessions() as s:
                return await fn(s)

        return run

    async def deep_page(s: AsyncSession) -> Any:
        cursor = usage.encode_cursor(start + timedelta(days=3), 10**12)
        return await usage.requests_page(s, month, cursor=cursor, limit=50)

    cases: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]] = [
        ("month totals (usage_daily)", lambda s: usage.totals(s, month)),
        ("month by day", lambda s: usage.summary(s, month, "day")),
        ("month by model", lambda s: usage.summary(s, month, "model")),
        ("month by key", lambda s: usage.summary(s, month, "key")),
        ("request log, first page of 50", lambda s: usage.requests_page(s, month, limit=50)),
        ("request log, page 27 days back", deep_page),
        ("request log, errors only", lambda s: usage.requests_page(s, month, status="error", limit=50)),
        ("request log, one key + model", lambda s: usage.requests_page(
            s, usage.UsageQuery.of(TENANT, month.since, month.until, key_id="key7", model="model-7"), limit=50)),
    ]  # fmt: skip
    try:
        print(f"{'query':38} {'median ms':>10} {'p95 ms':>8}")
        for name, fn in cases:
            median, p95, result = await timed(repeat, in_session(fn))
            print(f"{name:38} {median:10.2f} {p95:8.2f}")
            if name.startswith("month totals"):
                assert result.requests == KEYS * MODELS * DAYS * 1000
        naive = sa.select(sa.func.sum(UsageEvent.cost_micro_usd), sa.func.count()).where(
            UsageEvent.tenant_id == TENANT, UsageEvent.created_at >= month.since, UsageEvent.created_at < month.until
        )
        median, _, _ = await timed(1, in_session(lambda s: s.execute(naive)))
        print(f"{'for contrast: totals from usage_events':38} {median:10.2f}")
        async with sessions() as s:
            plan = await s.execute(sa.text("EXPLAIN " + _compiled(usage_totals_sql(month), engine)))
            print("plan of the month totals:", " / ".join(str(r[0]).strip() for r in plan))
    finally:
        await engine.dispose()


def usage_totals_sql(q: usage.UsageQuery) -> Any:
    from gateway.manage.usage import _SUMS, _daily_scope

    return sa.select(*_SUMS).where(*_daily_scope(q))


def _compiled(query: Any, engine: Any) -> str:
    return str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--tenants", type=int, default=2000, help="other tenants with a month of daily rows")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with scratch_database() as url:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
        asyncio.run(fill(url, args.events, args.tenants, start))
        asyncio.run(measure(normalise_database_url(url), args.repeat, start))


if __name__ == "__main__":
    main()
