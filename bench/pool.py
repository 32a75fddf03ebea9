"""CPU the key pool adds to one request, in-process (no network, no Redis): what ``Relay`` runs per request for
the pool — name the conversation, pick the key (priority, weight, affinity, health), carry it on a copy of the
route, and keep the conversation's choice. Issue 15's target: at most 50 µs per request.

    .venv/bin/python bench/pool.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from gateway.domain import Dialect, Route, Upstream, UpstreamKey
from gateway.upstreams.affinity import Affinity
from gateway.upstreams.breaker import Breakers
from gateway.upstreams.conversation import conversation_of
from gateway.upstreams.key_rates import MemoryKeyRates
from gateway.upstreams.pool import KeyPool

ROUNDS, N = 5, 20_000
ONE = (UpstreamKey("k0", "sk-0"),)
FOUR = tuple(UpstreamKey(f"k{i}", f"sk-{i}", weight=1 + i % 2, priority=1 + i // 3) for i in range(4))


def route(keys: tuple[UpstreamKey, ...]) -> Route:
    up = Upstream("u1", "up", "t1", Dialect.ANTHROPIC, "http://up", keys[0].secret, keys=keys, key_id=keys[0].id)
    return Route(public_name="m", model_id="m1", upstream=up, upstream_model="m-up")


def per_request(pool: KeyPool, r: Route, headers: Callable[[int], dict[str, str]]) -> Callable[[int], Awaitable[None]]:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}

    async def one(n: int) -> None:
        conversation = conversation_of("t1", headers(n), body)
        key = await pool.pick(r.upstream, conversation)
        assert key is not None
        carried = r if key.id == r.upstream.key_id else replace(r, upstream=replace(r.upstream, api_key=key.secret,
                                                                                      key_id=key.id))  # fmt: skip
        if conversation is not None:
            await pool.stick(conversation, key.id, carried.public_name)

    return one


async def measure(one: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for n in range(N):
            await one(n)
        rounds.append((time.perf_counter() - started) / N * 1e6)
    return min(rounds), statistics.median(rounds)


async def main() -> None:
    cases = {
        "one key, no conversation": (ONE, lambda n: {}),
        "4-key pool, no conversation": (FOUR, lambda n: {}),
        "4-key pool, one ongoing conversation": (FOUR, lambda n: {"x-claude-code-session-id": "s-1"}),
        "4-key pool, 1,000 conversations": (FOUR, lambda n: {"x-claude-code-session-id": f"s-{n % 1000}"}),
        "4-key pool, a new conversation each": (FOUR, lambda n: {"x-claude-code-session-id": f"new-{n}"}),
    }
    print(f"{'case':40} {'best µs':>8} {'median µs':>10}")
    for name, (keys, headers) in cases.items():
        pool = KeyPool(Breakers(), Affinity(max_entries=50_000), MemoryKeyRates())
        best, median = await measure(per_request(pool, route(keys), headers))
        print(f"{name:40} {best:8.2f} {median:10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
