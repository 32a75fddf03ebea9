"""The production meter: counters in Redis plus the ledger.

Counters per key, tenant and model, per day and per minute (requests and each token kind, cost).
Records are added up in memory and written in one pipeline every ``interval_s`` (one round trip for
many requests, never on the response path). When Redis is away the owed increments stay in memory
and are written when it returns, so the counters catch up; the ledger never depends on Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger

log = logging.getLogger("relay.meter")
DAY_TTL_S = 40 * 86400
MINUTE_TTL_S = 2 * 3600
MAX_OWED_HASHES = 200_000


def counter_names(rec: UsageRecord) -> list[tuple[str, int]]:
    """Hash names (and TTLs) a record counts into: per key, tenant and model, by day and by minute."""
    day = rec.created_at.strftime("%Y%m%d")
    minute = rec.created_at.strftime("%Y%m%d%H%M")
    out = []
    for scope in (f"key:{rec.key_id}", f"tenant:{rec.tenant_id}", f"model:{rec.model}"):
        out.append((f"relay:usage:{scope}:{day}", DAY_TTL_S))
        out.append((f"relay:usage:{scope}:m{minute}", MINUTE_TTL_S))
    return out


def counter_fields(rec: UsageRecord) -> dict[str, int]:
    u = rec.usage
    return {
        "requests": 1,
        "errors": int(rec.status >= 400),
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cost_micro_usd": rec.cost_micro_usd,
    }


class RedisMeter:
    def __init__(self, url: str, ledger: Ledger, interval_s: float = 0.05) -> None:
        self.redis: aioredis.Redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._ledger = ledger
        self._interval = interval_s
        self._owed: dict[str, tuple[int, Counter[str]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._ledger.start()
        self._task = asyncio.create_task(self._run(), name="relay-redis-counters")

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._ledger.close()
        await self.redis.aclose()

    def record(self, rec: UsageRecord) -> None:
        self._ledger.put(rec)
        fields = counter_fields(rec)
        for name, ttl in counter_names(rec):
            acc = self._owed.get(name)
            if acc is None:
                acc = self._owed[name] = (ttl, Counter())
            acc[1].update(fields)
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
            if not owed:
                return True
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for name, (ttl, fields) in owed.items():
                        for field, value in fields.items():
                            if value:
                                pipe.hincrby(name, field, value)
                        pipe.expire(name, ttl)
                    await pipe.execute()
                return True
            except (RedisError, OSError) as exc:
                self._merge_back(owed)
                log.warning("redis counters deferred (%s); %d hashes owed", type(exc).__name__, len(self._owed))
                return False

    def _merge_back(self, owed: dict[str, tuple[int, Counter[str]]]) -> None:
        for name, (ttl, fields) in owed.items():
            if name in self._owed:
                self._owed[name][1].update(fields)
            elif len(self._owed) < MAX_OWED_HASHES:  # bounded: the ledger is the truth, counters a cache
                self._owed[name] = (ttl, fields)
