"""Conversation affinity: the requests of one conversation keep their upstream key and fallback model.

Prompt caches live per provider account and key: a session that hops between keys loses its cache
(litellm#38078). The conversation is named by the client (``gateway.upstreams.conversation``); its choice is
kept for ``ttl_s`` (10 minutes) after its last use. Memory is bounded: at most ``max_entries`` in a process,
least recently used dropped first. With Redis the choice is shared by every worker and replica: a local miss
reads Redis once, a new choice is written at once and a kept one refreshed at most once a minute, both off
the request path. Conversation names are hashed before they are kept anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("relay.affinity")
TTL_S = 600.0
REFRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class Sticky:
    """A conversation's choice: the pool key that served it, and the model (a fallback's, when one answered)."""

    key_id: str
    model: str


@dataclass(slots=True)
class _Entry:
    sticky: Sticky
    expires: float
    written: float


class Affinity:
    def __init__(
        self,
        redis: RedisClient | None = None,
        *,
        ttl_s: float = TTL_S,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, conversation: str) -> Sticky | None:
        name = _name(conversation)
        now = self._clock()
        entry = self._entries.get(name)
        if entry is not None:
            if entry.expires > now:
                return entry.sticky
            del self._entries[name]
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(name)
        except REDIS_ERRORS as exc:
            log.debug("affinity read failed: %s", type(exc).__name__)
            return None
        if not raw:
            return None
        key_id, _, model = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition("\n")
        sticky = Sticky(key_id, model)
        self._keep(name, sticky, now, written=now)
        return sticky

    async def put(self, conversation: str, sticky: Sticky) -> None:
        """Keep (or refresh) ``conversation``'s choice; Redis is written in the background."""
        name = _name(conversation)
        now = self._clock()
        entry = self._entries.get(name)
        changed = entry is None or entry.sticky != sticky
        stale = entry is not None and now - entry.written >= REFRESH_S
        written = now if changed or stale else entry.written if entry is not None else now
        self._keep(name, sticky, now, written)
        if self._redis is not None and (changed or stale):
            task = asyncio.create_task(self._write(name, sticky))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _keep(self, name: str, sticky: Sticky, now: float, written: float) -> None:
        self._entries[name] = _Entry(sticky, now + self._ttl, written)
        self._entries.move_to_end(name)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def _write(self, name: str, sticky: Sticky) -> None:
        assert self._redis is not None
        try:
            await self._redis.set(name, f"{sticky.key_id}\n{sticky.model}", ex=int(self._ttl))
        except REDIS_ERRORS as exc:
            log.debug("affinity write failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=2.0)


def _name(conversation: str) -> str:
    return "relay:aff:" + hashlib.blake2b(conversation.encode(), digest_size=16).hexdigest()
