"""The one Redis client of a gateway process: standalone, Cluster or Sentinel (``RELAY_REDIS_MODE``).

Every user of Redis (counters, limiter, ledger handoff, invalidation, pool affinity and key rates)
takes the client built here, so the mode is decided in one place:

- ``standalone``: ``RELAY_REDIS_URL`` is the server (``redis://`` or ``rediss://``, as before).
- ``cluster``: ``RELAY_REDIS_URL`` names any node; the client discovers the others and follows
  ``MOVED``/``ASK``. Every multi-key script keeps its keys on one hash slot (``docs/metering.md``).
- ``sentinel``: ``RELAY_REDIS_URL`` names one or more sentinels (``redis://s1:26379,s2:26379``) and
  ``RELAY_REDIS_SENTINEL_MASTER`` the monitored master; the client asks the sentinels where the
  master is and asks again after a failover. Credentials, database and ``rediss`` in the URL are the
  master's; the sentinels are reached without credentials.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import RedisClusterException, RedisError

RedisClient: TypeAlias = aioredis.Redis | aioredis.RedisCluster
RedisMode = Literal["standalone", "cluster", "sentinel"]
MODES: tuple[str, ...] = ("standalone", "cluster", "sentinel")
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""What a Redis fault raises: a cluster that cannot be reached (or whose slot map has a hole) raises
``RedisClusterException``, which is not a ``RedisError``."""
TIMEOUT_S = 1.0
"""Socket and connect timeout of every command: a stalled Redis costs a request at most this."""


def connect(url: str, mode: str = "standalone", sentinel_master: str = "") -> RedisClient:
    """The client for ``mode``; nothing is connected until the first command."""
    timeouts = {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}
    if mode == "cluster":
        return aioredis.RedisCluster.from_url(url, **timeouts)
    if mode == "sentinel":
        if not sentinel_master:
            raise ValueError("sentinel mode needs the master's name (RELAY_REDIS_SENTINEL_MASTER)")
        nodes, options = sentinel_nodes(url)
        sentinel_kwargs = dict(timeouts, ssl=options.get("ssl", False))
        sentinel = Sentinel(
            nodes, sentinel_kwargs=sentinel_kwargs, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )
        master: aioredis.Redis = sentinel.master_for(sentinel_master, **options)
        return master
    if mode != "standalone":
        raise ValueError(f"unknown Redis mode {mode!r} (one of {', '.join(MODES)})")
    return aioredis.from_url(url, **timeouts)


def sentinel_nodes(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """``redis://[user:pass@]s1:26379,s2:26379[/db]`` (or each part a full URL) → the sentinels' addresses,
    and the master's connection options: the credentials, database and TLS written in the URL."""
    nodes: list[tuple[str, int]] = []
    options: dict[str, Any] = {}
    for part in (p.strip() for p in url.split(",") if p.strip()):
        split = urlsplit(part if "://" in part else "redis://" + part)
        if split.scheme not in ("redis", "rediss") or not split.hostname:
            raise ValueError(f"a sentinel must be redis://host:port, got {part.split('@')[-1]!r}")
        nodes.append((split.hostname, split.port or 26379))
        if split.username:
            options.setdefault("username", unquote(split.username))
        if split.password:
            options.setdefault("password", unquote(split.password))
        if split.path.strip("/").isdigit():
            options["db"] = int(split.path.strip("/"))
        if split.scheme == "rediss":
            options["ssl"] = True
    if not nodes:
        raise ValueError("no sentinel address in RELAY_REDIS_URL")
    return nodes, options


def is_cluster(client: RedisClient) -> bool:
    """Keys of different hash slots cannot meet in one script or transaction on this client."""
    return isinstance(client, aioredis.RedisCluster)


async def close(client: RedisClient) -> None:
    """Close the client and, for a Sentinel-managed one, its connections to the sentinels."""
    pool = getattr(client, "connection_pool", None)
    await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()
