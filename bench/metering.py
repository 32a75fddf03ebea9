"""What metering adds to one request: limits admit + settle, and recording usage.

    .venv/bin/python bench/metering.py [--n 3000] [--redis redis://127.0.0.1:6379/0]

Measures, per request and in the same process as the gateway would run them: the Redis limiter's
admit + settle (two Lua round trips on loopback, with rpm, tpm, concurrency and a budget all on),
the in-process limiter's, the meter's ``record`` (the part on the response path; the Redis
pipeline and the ledger insert happen later, batched), and the ledger's ``put`` with and without
the durable spool (one encode and one ``write(2)`` per record; the fsync runs in a thread every
0.2 s). Prints medians and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from gateway.domain import Limits, Usage
from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger
from gateway.metering.limits import Estimate, MemoryLimiter
from gateway.metering.limits_redis import RedisLimiter
from gateway.metering.redis import RedisMeter
from gateway.metering.spool import Spool


async def _zero(kind: str, owner: str, since: datetime | None) -> int:
    return 0


class _NullLedger:
    def start(self) -> None: ...
    def put(self, rec: UsageRecord) -> None: ...
    async def flush(self) -> None: ...
    async def close(self) -> None: ...


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def limiter_cost(limiter: object, n: int) -> list[float]:
    limits = Limits(rpm=10**9, tpm=10**12, concurrency=10**6, budget_micro_usd=10**15, tenant_budget_micro_usd=10**15)
    out = []
    for i in range(n):
        start = time.perf_counter()
        ticket = await limiter.admit(f"bench-key-{i % 50}", "bench-tenant", limits, Estimate(500, 1000))  # type: ignore[attr-defined]
        await limiter.settle(ticket, 450, 900)  # type: ignore[attr-defined]
        out.append((time.perf_counter() - start) * 1000)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    client = aioredis.from_url(args.redis)
    rows = []
    redis_limiter = RedisLimiter(client, _zero)
    await limiter_cost(redis_limiter, 200)  # warm the script cache and the connection pool
    rows.append(("redis limiter admit+settle", await limiter_cost(redis_limiter, args.n)))
    rows.append(("memory limiter admit+settle", await limiter_cost(MemoryLimiter(_zero), args.n)))
    meter = RedisMeter(args.redis, _NullLedger())  # type: ignore[arg-type]
    rec = UsageRecord(
        request_id="r", tenant_id="t", key_id="k", model="m", upstream_id="u", door_dialect="openai",
        upstream_dialect="openai", stream=False, usage=Usage(100, 50, 10, 0), cost_micro_usd=250, status=200,
        latency_ms=10, created_at=datetime.now(UTC),
    )  # fmt: skip
    record = []
    for _ in range(args.n):
        start = time.perf_counter()
        meter.record(rec)
        record.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    await meter._push()
    push_ms = (time.perf_counter() - start) * 1000
    rows.append(("meter.record (response path)", record))
    with tempfile.TemporaryDirectory() as spool_dir:
        spool = Spool(Path(spool_dir))
        spool.open()
        for name, ledger in (("ledger.put, no spool", Ledger(None)), ("ledger.put + spool", Ledger(None, spool=spool))):  # type: ignore[arg-type]
            puts = []
            for _ in range(args.n):
                start = time.perf_counter()
                ledger.put(rec)
                puts.append((time.perf_counter() - start) * 1000)
            rows.append((name, puts))
        spool.close(all_written=True)
    print(f"{'what':32} {'median ms':>10} {'p99 ms':>8}")
    for name, values in rows:
        print(f"{name:32} {statistics.median(values):10.3f} {pct(values, 99):8.3f}")
    print(
        f"{'redis counters pipeline, batch':32} {push_ms / args.n:10.3f} (per request, {args.n} requests in one push)"
    )
    await meter.redis.aclose()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
