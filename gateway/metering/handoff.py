"""Usage records a closing process could not write, handed to Redis for any live worker to write.

The spool covers a process that dies or stops on a machine that keeps its disk. A replica whose
disk goes with it (a Kubernetes pod's ``emptyDir``) would take its spool along, so on a shutdown
whose ledger deadline ran out (the database is down) the unwritten records are also pushed to a
Redis list; every worker's ledger adopts from it like from a dead process's spool. An adopter
removes a record from the list only once it is in its own fsynced spool (``LREM`` by value, so two
adopters reading the same records remove each once and lose none; the ledger drops the duplicate
by request id). With Redis persistence off, a Redis restart in that window loses the list; the
spool files, if the disk survives, still hold everything.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from gateway.metering.base import UsageRecord
from gateway.redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("relay.ledger")
GIVE_TIMEOUT_S = 3.0
TAKE_BATCH = 500
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(UsageRecord).decode


class RedisHandoff:
    def __init__(self, redis: RedisClient, database: str) -> None:
        self._redis = redis
        self.key = f"relay:ledger:handoff:{database}"
        """One list per database (``spool.database_fingerprint``): records never cross into another."""

    async def give(self, records: list[UsageRecord]) -> bool:
        """Push ``records``; False when Redis did not take them all in time (the spool keeps them anyway)."""
        try:
            async with asyncio.timeout(GIVE_TIMEOUT_S):
                for start in range(0, len(records), TAKE_BATCH):
                    await self._redis.rpush(self.key, *[_encode(r) for r in records[start : start + TAKE_BATCH]])
            return True
        except REDIS_ERRORS as exc:  # TimeoutError is an OSError
            log.error("ledger: handing %d unwritten records to Redis failed (%s)", len(records), type(exc).__name__)
            return False

    async def peek(self) -> list[tuple[str, UsageRecord]]:
        """The oldest records waiting, raw and decoded (an undecodable entry is dropped with a warning)."""
        out = []
        for entry in await self._redis.lrange(self.key, 0, TAKE_BATCH - 1):
            item = entry if isinstance(entry, str) else entry.decode(errors="replace")
            try:
                out.append((item, _decode(item)))
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.warning("ledger: dropped an unreadable handed-off record")
                await self._redis.lrem(self.key, 1, item)
        return out

    async def remove(self, raw: list[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for item in raw:
                pipe.lrem(self.key, 1, item)
            await pipe.execute()
