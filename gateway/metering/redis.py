"""The production meter: counters in Redis (one pipeline per record, off the response path) plus the ledger."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger

log = logging.getLogger("relay.meter")
DAY_TTL_S = 40 * 86400


class RedisMeter:
    def __init__(self, url: str, ledger: Ledger) -> None:
        self.redis: aioredis.Redis = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._ledger = ledger
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._ledger.start()

    async def close(self) -> None:
        await self.flush()
        await self._ledger.close()
        await self.redis.aclose()

    def record(self, rec: UsageRecord) -> None:
        self._ledger.put(rec)
        task = asyncio.create_task(self._count(rec))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._ledger.flush()

    async def _count(self, rec: UsageRecord) -> None:
        day = rec.created_at.strftime("%Y%m%d")
        fields = {
            "requests": 1,
            "input_tokens": rec.usage.input_tokens,
            "output_tokens": rec.usage.output_tokens,
            "cache_read_tokens": rec.usage.cache_read_tokens,
            "cache_write_tokens": rec.usage.cache_write_tokens,
            "cost_micro_usd": rec.cost_micro_usd,
        }
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for scope in (f"key:{rec.key_id}", f"tenant:{rec.tenant_id}", f"model:{rec.model}"):
                    name = f"relay:usage:{scope}:{day}"
                    for field, value in fields.items():
                        pipe.hincrby(name, field, value)
                    pipe.expire(name, DAY_TTL_S)
                await pipe.execute()
        except Exception as exc:  # the ledger still has the record; counters are a cache of it
            log.warning("redis counters not updated: %s", type(exc).__name__)
