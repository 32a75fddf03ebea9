"""The one in-process TTL cache of the hot path (keys → principals, tenants → model tables).

Two properties the request path needs, measured at 50 concurrent requests:
- a miss loads once, however many requests miss at the same moment (before this, every request
  in flight at expiry ran its own query, and the pool's overflow connections were opened and
  closed again each time);
- an entry that expired less than ``grace_s`` ago is still served while one refresh runs in the
  background, so expiry costs no request a database round trip. Staleness stays bounded by
  ``ttl_s + grace_s``: the revocation promise (a revoked key stops within 5 s) rests on that sum.

``forget`` (cross-replica invalidation) drops everything at once; the next request loads afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
log = logging.getLogger("relay.cache")


class TTLCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        *,
        ttl_s: float,
        grace_s: float = 1.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl = ttl_s
        self._grace = min(grace_s, ttl_s)  # a zero TTL (tests, strict setups) means always fresh
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    async def get(self, key: K) -> V:
        hit = self._entries.get(key)
        if hit is not None:
            expires, value = hit
            now = self._clock()
            if now < expires:
                return value
            if now < expires + self._grace:
                if key not in self._inflight:
                    self._start_load(key).add_done_callback(_log_failure)
                return value
        future = self._inflight.get(key) or self._start_load(key)
        return await asyncio.shield(future)  # one caller going away must not cancel the others' load

    def forget(self) -> None:
        # Loads already running read the data before the change: nobody new may join them, nor are they kept.
        self._entries.clear()
        self._inflight.clear()
        self._generation += 1

    def _start_load(self, key: K) -> asyncio.Future[V]:
        task = asyncio.ensure_future(self._load_and_keep(key, self._generation))
        task.add_done_callback(_consume_exception)  # its waiters may all have gone away
        self._inflight[key] = task
        return task

    async def _load_and_keep(self, key: K, generation: int) -> V:
        try:
            value = await self._load(key)
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]
        if generation == self._generation:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (self._clock() + self._ttl, value)
        return value


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("background cache refresh failed (the stale entry is served): %r", future.exception())
