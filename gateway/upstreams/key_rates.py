"""A pool key's own per-minute limits (``--rpm``/``--tpm`` of ``relay upstreams keys add``), in fixed one-minute
windows: a key at its limit is passed over for the rest of the minute. In-process on the embedded default;
in Redis (one counter per key and minute, hash-tagged by key) when the gateway has Redis, shared by every
worker and replica. A Redis fault lets the key through: these limits protect an upstream's quota, and the
upstream's own 429 still cools the key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from gateway.domain import UpstreamKey
from gateway.redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("relay.pool")

_ADMIT = """
if ARGV[2] ~= '0' then
  local t = tonumber(redis.call('GET', KEYS[2]) or '0')
  if t >= tonumber(ARGV[2]) then return 0 end
end
if ARGV[1] ~= '0' then
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
  if n > tonumber(ARGV[1]) then return 0 end
end
return 1
"""


class KeyRates(Protocol):
    async def admit(self, key: UpstreamKey) -> bool:
        """Count one request on ``key`` when it is under both its limits; False when it is at one."""
        ...

    def spend(self, key_id: str, tokens: int) -> None:
        """Add a finished request's tokens to ``key``'s minute (for ``tpm``)."""
        ...


class MemoryKeyRates:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._window = -1
        self._counts: dict[str, list[int]] = {}

    def _now(self) -> dict[str, list[int]]:
        window = int(self._clock() // 60)
        if window != self._window:
            self._window, self._counts = window, {}
        return self._counts

    async def admit(self, key: UpstreamKey) -> bool:
        counts = self._now().setdefault(key.id, [0, 0])
        if key.tpm is not None and counts[1] >= key.tpm:
            return False
        if key.rpm is not None and counts[0] >= key.rpm:
            return False
        counts[0] += 1
        return True

    def spend(self, key_id: str, tokens: int) -> None:
        self._now().setdefault(key_id, [0, 0])[1] += tokens


class RedisKeyRates:
    def __init__(self, redis: RedisClient, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._admit = redis.register_script(_ADMIT)
        self._pending: set[asyncio.Task[None]] = set()

    def _keys(self, key_id: str) -> tuple[str, str]:
        window = int(self._clock() // 60)
        return f"relay:krate:{{{key_id}}}:r:{window}", f"relay:krate:{{{key_id}}}:t:{window}"

    async def admit(self, key: UpstreamKey) -> bool:
        try:
            return bool(await self._admit(keys=list(self._keys(key.id)), args=[key.rpm or 0, key.tpm or 0]))
        except REDIS_ERRORS as exc:
            log.warning("upstream key limits unavailable (%s); key %s let through", type(exc).__name__, key.id)
            return True

    def spend(self, key_id: str, tokens: int) -> None:
        task = asyncio.create_task(self._spend(self._keys(key_id)[1], tokens))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _spend(self, counter: str, tokens: int) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(counter, tokens)
                pipe.expire(counter, 120)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            log.debug("upstream key tokens not counted: %s", type(exc).__name__)
