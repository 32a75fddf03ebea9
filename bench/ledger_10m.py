"""A year of traffic in the partitioned ledger (Postgres): 10 million usage events, and how fast the dashboard reads.

    .venv/bin/python bench/ledger_10m.py [--rows 10000000] [--months 12] [--repeat 5]

Creates a scratch database (dropped at the end), migrates it (``usage_events`` partitioned by month),
lets the gateway create the year's partitions (``partitions.ensure_ahead``), and seeds ``--rows``
events with ``INSERT … SELECT generate_series`` one month at a time: spread evenly over ``--months``
months, 50 tenants with 10 keys each (500 keys), 8 models, about 3 % errors (429, 502, 400). The
matching ``usage_daily`` rows are summed from those events in SQL. Then it times, wall-clock through
``gateway.manage.usage`` itself (best and median of ``--repeat``, after one warm-up): the month's
totals as the dashboard and ``GET /api/v1/usage`` read them (``usage.totals``, from the rollup), the
month by model, and the request log (``usage.requests_page``): the first page and a page deep in an
earlier month. Target (issue 16): both under 100 ms. Prints the figures and the plans' partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rollup_query import scratch_database, timings

from gateway.manage import usage
from gateway.metering import partitions
from gateway.metering.partitions import add_months, month_of
from gateway.settings import normalise_database_url

PG_ADMIN_URL = os.environ.get("RELAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TENANTS, KEYS_PER_TENANT = 50, 10
MODELS = [
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gpt-5",
    "gpt-5-mini",
    "deepseek-chat",
    "kimi-k2",
    "qwen3-coder",
    "glm-4.6",
]
TARGET_MS = 100.0

# Row g of n lies at start + g * span / n. Tenant g % 50; its key (g / 50) % 10; the model (g / 7) % 8;
# tokens and latency vary with g. Cost: 3 µUSD per input token, 15 per output, 0.3 per cache read.
EVENTS_SQL = """
INSERT INTO usage_events (request_id, created_at, tenant_id, key_id, model, upstream_id, upstream_key_id,
                          door_dialect, upstream_dialect, stream, input_tokens, output_tokens, cache_read_tokens,
                          cache_write_tokens, estimated, cost_micro_usd, status, error_code, latency_ms, ttft_ms)
SELECT 'bench-' || g, $1::timestamptz + g * ($2::float8 / $3) * interval '1 second',
       'tenant-' || (g % 50), 'key-' || (g % 50) || '-' || ((g / 50) % 10), ($4::text[])[1 + (g / 7) % 8],
       'upstream-' || ((g / 7) % 8), NULL, CASE WHEN g % 3 = 0 THEN 'openai' ELSE 'anthropic' END,
       CASE WHEN (g / 7) % 8 < 2 THEN 'anthropic' ELSE 'openai' END, g % 4 <> 0,
       t.input, t.output, t.cached, 0, false, t.input * 3 + t.output * 15 + t.cached * 3 / 10,
       s.status, CASE s.status WHEN 200 THEN NULL WHEN 429 THEN 'rate_limited' WHEN 400 THEN 'invalid_request'
                  ELSE 'upstream_error' END,
       200 + (g * 37) % 9000, CASE WHEN g % 4 <> 0 THEN 80 + (g * 13) % 900 END
FROM generate_series($5::bigint, $6::bigint - 1) g,
     LATERAL (SELECT CASE WHEN g % 53 = 0 THEN 429 WHEN g % 97 = 0 THEN 502 WHEN g % 211 = 0 THEN 400
                          ELSE 200 END AS status) s,
     LATERAL (SELECT CASE WHEN s.status = 200 THEN 300 + (g * 7919) % 20000 ELSE 0 END AS input,
                     CASE WHEN s.status = 200 THEN 50 + (g * 104729) % 3000 ELSE 0 END AS output,
                     CASE WHEN s.status = 200 AND g % 3 = 0 THEN (g * 31) % 40000 ELSE 0 END AS cached) t
"""
DAILY_SQL = """
INSERT INTO usage_daily (tenant_id, day, key_id, model, requests, errors, input_tokens, output_tokens,
                         cache_read_tokens, cache_write_tokens, cost_micro_usd)
SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, coalesce(key_id, ''), model, count(*),
       count(*) FILTER (WHERE status >= 400), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
       sum(cache_write_tokens), sum(cost_micro_usd)
FROM usage_events GROUP BY 1, 2, 3, 4
"""


async def seed(url: str, rows: int, start: datetime, end: datetime) -> None:
    """The events, month by month (each one partition's INSERT), then their daily rollups.

    The ledger's unique keys and indexes are dropped for the load and built again after it, from their
    own definitions (checked identical): several times faster than maintaining seven indexes per row.
    """
    span = (end - start).total_seconds()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        shape = await _indexes(conn)
        keys = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'usage_events'::regclass AND contype IN ('p', 'u') ORDER BY conname"
        )
        for name, _ in keys:
            await conn.execute(f"ALTER TABLE usage_events DROP CONSTRAINT {name}")
        plain = [(name, sql) for name, sql in shape if name not in {k for k, _ in keys}]
        for name, _ in plain:
            await conn.execute(f"DROP INDEX {name}")
        t0 = time.perf_counter()
        month = month_of(start)
        while (lo_at := max(start, datetime.combine(month, datetime.min.time(), UTC))) < end:
            hi_at = min(end, datetime.combine(add_months(month, 1), datetime.min.time(), UTC))
            lo = int((lo_at - start).total_seconds() / span * rows)
            hi = int((hi_at - start).total_seconds() / span * rows) if hi_at < end else rows
            t = time.perf_counter()
            await conn.execute(EVENTS_SQL, start, span, rows, MODELS, lo, hi)
            print(f"  {partitions.partition_name(month)}: {hi - lo:>9,} events in {time.perf_counter() - t:5.1f} s")
            month = add_months(month, 1)
        t_load = time.perf_counter()
        for name, definition in keys:
            await conn.execute(f"ALTER TABLE usage_events ADD CONSTRAINT {name} {definition}")
        for _, sql in plain:
            await conn.execute(sql.replace(" ON ONLY ", " ON ", 1))  # and every partition's index
        assert await _indexes(conn) == shape
        t1 = time.perf_counter()
        await conn.execute("SET work_mem = '256MB'")
        await conn.execute(DAILY_SQL)
        t2 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE usage_events")
        await conn.execute("VACUUM ANALYZE usage_daily")
        t3 = time.perf_counter()
        events = await conn.fetchval("SELECT count(*) FROM usage_events")
        daily = await conn.fetchval("SELECT count(*) FROM usage_daily")
        stray = await conn.fetchval(f"SELECT count(*) FROM {partitions.DEFAULT}")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(
            f"seeded {events:,} usage_events in {t1 - t0:.1f} s ({t_load - t0:.1f} s loading, {t1 - t_load:.1f} s"
            f" building the keys and indexes; {events / (t1 - t0):,.0f} rows/s; {stray} in DEFAULT),"
            f" {daily:,} usage_daily rows in {t2 - t1:.1f} s, VACUUM ANALYZE {t3 - t2:.1f} s;"
            f" total {t3 - t0:.1f} s; database {size}"
        )
    finally:
        await conn.close()


async def _indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    found = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage_events' ORDER BY indexname"
    )
    return [(r[0], r[1]) for r in found]


async def timed(repeat: int, fn: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """Best and median (ms), and the last result."""
    times, result = await timings(repeat, fn)
    return times[0], statistics.median(times), result


async def measure(url: str, repeat: int, end: datetime) -> bool:
    engine = create_async_engine(url, pool_size=2)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    tenant = "tenant-7"
    this_month = usage.UsageQuery.of(tenant, now=end)
    last_start = datetime.combine(add_months(month_of(end), -1), datetime.min.time(), UTC)
    last_month = usage.UsageQuery.of(tenant, last_start, this_month.since)
    deep = usage.encode_cursor(last_start + timedelta(days=9, hours=5), 10**15)  # two thirds into last month

    def in_session(fn: Callable[[AsyncSession], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            async with sessions() as s:
                return await fn(s)

        return run

    cases: list[tuple[str, bool, Callable[[AsyncSession], Awaitable[Any]]]] = [
        ("month totals, this month (usage_daily)", True, lambda s: usage.totals(s, this_month)),
        ("month totals, last month (usage_daily)", True, lambda s: usage.totals(s, last_month)),
        ("last month by model (usage_daily)", False, lambda s: usage.summary(s, last_month, "model")),
        ("request log, first page of 50", True, lambda s: usage.requests_page(s, this_month, limit=50)),
        ("request log, page 50 deep in last month", True,
         lambda s: usage.requests_page(s, last_month, cursor=deep, limit=50)),
        ("request log, errors only, last month", False,
         lambda s: usage.requests_page(s, last_month, status="error", limit=50)),
    ]  # fmt: skip
    ok = True
    try:
        print(f"{'query (tenant-7)':44} {'best ms':>8} {'median ms':>10}  target")
        for name, targeted, fn in cases:
            best, median, result = await timed(repeat, in_session(fn))
            verdict = ("ok" if best < TARGET_MS else "OVER") if targeted else ""
            ok = ok and verdict != "OVER"
            print(f"{name:44} {best:8.2f} {median:10.2f}  {verdict}")
            if name.startswith("month totals"):
                assert result.requests > 0
            if name.startswith("request log, page"):
                assert len(result.rows) == 50 and all(r.created_at.month == last_start.month for r in result.rows)
    finally:
        await engine.dispose()
    return ok


async def plans(url: str, end: datetime) -> None:
    """Which partitions the request log's deep page reads (pruning), from EXPLAIN ANALYZE."""
    conn = await asyncpg.connect(url)
    try:
        last_start = datetime.combine(add_months(month_of(end), -1), datetime.min.time(), UTC)
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM usage_events WHERE tenant_id = 'tenant-7'"
            " AND created_at >= $1 AND created_at < $2 AND (created_at, id) < ($3, 1000000000000000)"
            " ORDER BY created_at DESC, id DESC LIMIT 51",
            last_start, datetime.combine(month_of(end), datetime.min.time(), UTC), last_start + timedelta(days=9),
        )  # fmt: skip
        lines = [str(r[0]).strip() for r in plan]
        print("deep page plan:", " / ".join(line for line in lines if "Scan" in line or "Execution" in line))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ok = False
    with scratch_database() as url:
        end = datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(days=round(args.months * 30.44))

        async def prepare() -> None:
            engine = create_async_engine(normalise_database_url(url))
            try:
                made = await partitions.ensure_ahead(
                    async_sessionmaker(engine), now=start, ahead=args.months + partitions.AHEAD
                )
                print(f"partitions created by the gateway: {len(made)} ({made[0]} … {made[-1]})")
            finally:
                await engine.dispose()

        asyncio.run(prepare())
        print(f"seeding {args.rows:,} events from {start:%Y-%m-%d} to {end:%Y-%m-%d}:")
        asyncio.run(seed(url, args.rows, start, end))
        ok = asyncio.run(measure(normalise_database_url(url), args.repeat, end))
        asyncio.run(plans(url, end))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
