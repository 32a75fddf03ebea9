"""The production meter: counters in Redis plus the ledger.

Counters per key, tenant and model, per day and per minute (requests and each token kind, cost).
Records are added up in memory and written in one pipeline every ``interval_s`` (one round trip for
many requests, never on the response path). Each hash is its own key and the pipeline is not a
transaction, so on a Redis Cluster the client splits it by node (one round trip per node). When
Redis is away the owed increments stay in memory and are written when it returns, so the counters
catch up; the ledger never depends on Redis.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from gateway import redis_client
from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger
from gateway.redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("relay.meter")
DAY_TTL_S = 40 * 86400
MINUTE_TTL_S = 2 * 3600
MAX_OWED_HASHES = 200_000


FIELDS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_micro_usd",
)
Hashes = dict[str, tuple[int, dict[str, int]]]
"""Redis hash name -> (TTL, field increments)."""


class Tallies:
    """Records added up per (key, tenant, model, minute): a few integer additions on the response path.

    The hash names (per key, tenant and model; by day and by minute) are built only when the
    tallies are written, once per group instead of six times per request.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str | None, str, str, int], list[int]] = {}

    def add(self, rec: UsageRecord) -> None:
        group = (rec.key_id, rec.tenant_id, rec.model, int(rec.created_at.timestamp()) // 60)
        t = self._groups.get(group)
        if t is None:
            t = self._groups[group] = [0] * len(FIELDS)
        u = rec.usage
        t[0] += 1
        t[1] += rec.status >= 400
        t[2] += u.input_tokens
        t[3] += u.output_tokens
        t[4] += u.cache_read_tokens
        t[5] += u.cache_write_tokens
        t[6] += rec.cost_micro_usd

    def drain(self) -> Hashes:
        groups, self._groups = self._groups, {}
        out: Hashes = {}
        for (key_id, tenant_id, model, minute), values in groups.items():
            at = datetime.fromtimestamp(minute * 60, UTC)
            day, stamp = at.strftime("%Y%m%d"), at.strftime("%Y%m%d%H%M")
            for scope in (f"key:{key_id}", f"tenant:{tenant_id}", f"model:{model}"):
                merge_into(out, f"relay:usage:{scope}:{day}", DAY_TTL_S, values)
                merge_into(out, f"relay:usage:{scope}:m{stamp}", MINUTE_TTL_S, values)
        return out


def merge_into(hashes: Hashes, name: str, ttl: int, values: list[int] | dict[str, int]) -> None:
    fields = hashes.setdefault(name, (ttl, {}))[1]
    pairs = zip(FIELDS, values, strict=True) if isinstance(values, list) else values.items()
    for field, value in pairs:
        if value:
            fields[field] = fields.get(field, 0) + value


class RedisMeter:
    def __init__(self, redis: RedisClient | str, ledger: Ledger, interval_s: float = 0.05) -> None:
        """``redis``: the process's client (``redis_client.connect``), or a standalone server's URL."""
        self.redis: RedisClient = redis_client.connect(redis) if isinstance(redis, str) else redis
        self._ledger = ledger
        self._interval = interval_s
        self._tallies = Tallies()
        self._owed: Hashes = {}
        """Increments a failed write left behind, written with the next ones."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._ledger.start()
        self._task = asyncio.create_task(self._run(), name="relay-redis-counters")

    async def close(self) -> None:
        await self._push()  # bounded by the client's socket timeouts; the ledger has its own deadline
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._ledger.close()
        await redis_client.close(self.redis)

    def record(self, rec: UsageRecord) -> None:
        self._ledger.put(rec)
        self._tallies.add(rec)
        self._wake.set()

    async def flush(self) -> None:
        await self._push()
        await self._ledger.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)
            self._wake.clear()
            if not await self._push():
                await asyncio.sleep(1.0)  # Redis is away: try again in a second, counts kept meanwhile
                self._wake.set()

    async def _push(self) -> bool:
        async with self._lock:
            owed, self._owed = self._owed, {}
            for name, (ttl, fields) in self._tallies.drain().items():
                merge_into(owed, name, ttl, fields)
            if not owed:
                return True
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for name, (ttl, fields) in owed.items():
                        for field, value in fields.items():
                            pipe.hincrby(name, field, value)
                        pipe.expire(name, ttl)
                    await pipe.execute()
                return True
            except REDIS_ERRORS as exc:
                self._merge_back(owed)
                log.warning("redis counters deferred (%s); %d hashes owed", type(exc).__name__, len(self._owed))
                return False

    def _merge_back(self, owed: Hashes) -> None:
        for name, (ttl, fields) in owed.items():
            # Bounded: the ledger is the truth, the counters a cache.
            if name in self._owed or len(self._owed) < MAX_OWED_HASHES:
                merge_into(self._owed, name, ttl, fields)
