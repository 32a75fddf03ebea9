"""Cache invalidation across workers and replicas through Redis pub/sub.

Keys and model tables are cached per process (seconds). A change made through the management API
or the admin UI clears the local caches at once and publishes the cache's name; every other worker
clears its copy when the message arrives. Without Redis (embedded, one process) only the local
clear happens; the TTLs bound staleness everywhere regardless (a lost message costs seconds).

On a Redis Cluster the channel is classic pub/sub: a ``PUBLISH`` on any node reaches the subscribers
of every node (the cluster bus relays it), so each process subscribes on the node owning the
channel's slot and resubscribes, with a fresh slot map, when that node fails or fails over. (Sharded
pub/sub would save the relaying but needs Redis 7; these messages are few.) The subscription has a
connection of its own there: redis-py's cluster pubsub borrows the node's shared pool and takes its
oldest idle socket without a health check, so after a node restart it would resubscribe on one dead
socket a second, one per request the pool ever held (CI saw the channel down for over 7 s). Under
Sentinel the client finds the new master after a failover and the loop resubscribes there (its pool
checks a socket before handing it out).

The same channel carries small verdicts for every process (``publish``: a pool key cooling or refused),
as ``topic|payload`` messages handed to the topic's handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.client import PubSub

from gateway.redis_client import REDIS_ERRORS, RedisClient

log = logging.getLogger("relay.invalidation")
CHANNEL = "relay:invalidate"


class Invalidation:
    def __init__(
        self,
        redis: RedisClient | None,
        targets: dict[str, Callable[[], None]],
        topics: dict[str, Callable[[str], None]] | None = None,
    ) -> None:
        self._redis = redis
        self._targets = targets
        self._topics = topics or {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._redis is not None:
            self._task = asyncio.create_task(self._listen(), name="relay-invalidation")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def invalidate(self, name: str) -> None:
        """Clear ``name`` here now, and everywhere else as soon as the message arrives."""
        self._targets[name]()
        self._send(name)

    def publish(self, topic: str, payload: str) -> None:
        """Hand ``payload`` to ``topic``'s handler in every other process (this one already knows)."""
        self._send(f"{topic}|{payload}")

    def _send(self, message: str) -> None:
        if self._redis is not None:
            task = asyncio.create_task(self._publish(message))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _publish(self, message: str) -> None:
        assert self._redis is not None
        try:
            await self._redis.publish(CHANNEL, message)
        except REDIS_ERRORS as exc:
            log.warning("cache invalidation not published (%s); other workers catch up by TTL", type(exc).__name__)

    async def _listen(self) -> None:
        lost = False
        while True:
            try:
                async with self._pubsub(refresh=lost) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    if lost:
                        log.warning("cache invalidation channel back")
                    lost = False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            self._receive(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                if not lost:
                    log.warning("cache invalidation channel lost (%s); resubscribing", type(exc).__name__)
                lost = True
                await asyncio.sleep(1.0)

    @asynccontextmanager
    async def _pubsub(self, refresh: bool) -> AsyncIterator[PubSub]:
        assert self._redis is not None
        if not isinstance(self._redis, RedisCluster):
            async with self._redis.pubsub() as pubsub:
                yield pubsub
            return
        # The channel's node comes from the slot map; after a failover, ask the cluster afresh.
        await (self._redis.nodes_manager.initialize() if refresh else self._redis.initialize())
        node = self._redis.get_node_from_key(CHANNEL)
        assert node is not None
        pool = ConnectionPool(connection_class=node.connection_class, max_connections=1, **node.connection_kwargs)
        async with Redis.from_pool(pool) as client, client.pubsub() as pubsub:
            yield pubsub

    def _receive(self, message: str) -> None:
        topic, sep, payload = message.partition("|")
        if sep:
            handler = self._topics.get(topic)
            if handler is not None:
                handler(payload)
            return
        target = self._targets.get(message)
        if target is not None:
            target()
