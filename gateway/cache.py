"""The one in-process TTL cache of the hot path (keys → principals, tenants → model tables).

Two properties the request path needs, measured at 50 concurrent requests:
- a miss loads once, however many requests miss at the same moment (before this, every request
  in flight at expiry ran its own query, and the pool's overflow connections were opened and
  closed again each time);
- an entry that expired less than ``grace_s`` ago is still served while one refresh runs in the
  background, so expiry costs no request a database round trip. Staleness stays bounded by
  ``ttl_s + grace_s``: the revocation promise (a revoked key stops within 5 s) rests on that sum.

While the database is down (an ``Outage`` is given), an entry is served up to ``stale_if_error_s``
past its expiry without waiting for a load, while one refresh at a time probes the database; a
miss that cannot load answers with the outage's error (503). Staleness then is bounded by
``ttl_s + stale_if_error_s``: a key revoked just before an outage may work that long.

``forget`` (cross-replica invalidation) drops everything at once; the next request loads afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from gateway.db.outage import Outage

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
        outage: Outage | None = None,
        stale_if_error_s: float = 0.0,
    ) -> None:
        self._load = load
        self._outage = outage
        self._stale = stale_if_error_s if outage is not None else 0.0
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
            if now < expires + self._grace or (self._down and now < expires + self._stale):
                if key not in self._inflight:
                    self._start_load(key).add_done_callback(self._refreshed)
                return value
        future = self._inflight.get(key) or self._start_load(key)
        try:
            return await asyncio.shield(future)  # one caller going away must not cancel the others' load
        except Exception as exc:
            if self._outage is None or not self._outage.explains(exc):
                raise
            error = self._outage.failed(exc)
            if hit is not None and self._clock() < hit[0] + self._stale:
                return hit[1]
            raise error from None

    @property
    def _down(self) -> bool:
        return self._outage is not None and self._outage.down

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
        if self._outage is not None:
            self._outage.recovered()
        if generation == self._generation:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (self._clock() + self._ttl, value)
        return value

    def _refreshed(self, future: asyncio.Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is None:
            return
        if self._outage is not None and self._outage.explains(exc):
            self._outage.failed(exc)  # one warning per outage, not one per refresh
        else:
            log.warning("background cache refresh failed (the stale entry is served): %r", exc)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
