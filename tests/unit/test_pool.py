"""The key pool's choice and health rules, the affinity store and the keys' own limits, without I/O."""

from __future__ import annotations

import asyncio
from collections import Counter

from gateway.domain import Dialect, Upstream, UpstreamKey
from gateway.upstreams.affinity import Affinity, Sticky
from gateway.upstreams.breaker import Breakers
from gateway.upstreams.key_rates import MemoryKeyRates
from gateway.upstreams.pool import KeyPool, rendezvous


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def upstream(*keys: UpstreamKey) -> Upstream:
    first = keys[0]
    return Upstream("up1", "up", None, Dialect.OPENAI, "http://x/v1", first.secret, keys=keys, key_id=first.id)


def carrying(up: Upstream, key_id: str) -> Upstream:
    from dataclasses import replace

    return replace(up, key_id=key_id)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_rendezvous_follows_weights_and_moves_only_the_leaving_keys_conversations():
    keys = [UpstreamKey("a", "s", weight=3), UpstreamKey("b", "s", weight=1), UpstreamKey("c", "s", weight=1)]
    chosen = {f"conv-{n}": rendezvous(keys, f"conv-{n}").id for n in range(5000)}
    share = Counter(chosen.values())
    assert abs(share["a"] / 5000 - 0.6) < 0.03 and abs(share["b"] / 5000 - 0.2) < 0.03
    without_c = {conv: rendezvous(keys[:2], conv).id for conv in chosen}
    moved = [conv for conv in chosen if chosen[conv] != without_c[conv]]
    assert moved and all(chosen[conv] == "c" for conv in moved)


def test_best_priority_first_and_cooling_keys_left_out():
    clock = Clock()
    pool = KeyPool(Breakers(), clock=clock)
    up = upstream(UpstreamKey("main", "s1", priority=1), UpstreamKey("spare", "s2", priority=2))
    assert {run(pool.pick(up, None)).id for _ in range(50)} == {"main"}
    verdict = pool.judge(carrying(up, "main"), 429, {"retry-after": "7"}, "slow down")
    assert verdict.cooling_s == 7 and pool.states(up) == {"main": "cooling", "spare": "active"}
    assert run(pool.pick(up, None)).id == "spare" and pool.cooling_left(up) == 7
    clock.now += 7.5
    assert run(pool.pick(up, None)).id == "main"


def test_429_without_retry_after_backs_off_exponentially_and_resets_after_a_success():
    clock = Clock()
    pool = KeyPool(Breakers(), clock=clock)
    up = upstream(UpstreamKey("a", "s"), UpstreamKey("b", "s"))
    waits = []
    for _ in range(8):
        waits.append(pool.judge(up, 429, {}, "").cooling_s)
        clock.now += 100
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    pool.succeeded(up)
    assert pool.judge(up, 429, {}, "").cooling_s == 1


def test_refusals_disable_but_never_the_last_active_key():
    pool = KeyPool(Breakers(), clock=Clock())
    up = upstream(UpstreamKey("a", "s"), UpstreamKey("b", "s"))
    verdict = pool.judge(up, 401, {}, "Incorrect API key")
    assert verdict.disabled == "upstream answered 401: Incorrect API key"
    assert pool.judge(carrying(up, "b"), 403, {}, "forbidden").disabled is None  # b is all that is left
    assert pool.judge(upstream(UpstreamKey("only", "s")), 401, {}, "x").disabled is None
    assert pool.judge(up, 400, {}, "bad request").disabled is None and pool.judge(up, 500, {}, "").cooling_s is None


def test_verdicts_from_other_processes_apply_and_enabling_clears_them():
    sent: list[str] = []
    first, second = KeyPool(Breakers(), clock=Clock()), KeyPool(Breakers(), clock=Clock())
    first.publish = sent.append
    up = upstream(UpstreamKey("a", "s"), UpstreamKey("b", "s"))
    first.judge(up, 401, {}, "revoked")
    for message in sent:
        second.apply(message)
    second.apply("not json")
    second.apply('{"k": 5}')
    assert second.states(up) == {"a": "disabled", "b": "active"}
    first.enabled("a")
    second.apply(sent[-1])
    assert second.states(up)["a"] == "active"


def test_an_open_circuit_takes_its_key_out():
    breakers = Breakers(threshold=1, cooldown_s=30, clock=Clock())
    pool = KeyPool(breakers, clock=Clock())
    up = upstream(UpstreamKey("a", "s"), UpstreamKey("b", "s"))
    breakers.failure(pool.breaker_id(carrying(up, "b")))
    assert {run(pool.pick(up, None)).id for _ in range(30)} == {"a"}
    assert run(pool.pick(up, None, tried=["a"])) is None


def test_a_conversation_keeps_its_key_and_weights_hold_across_conversations():
    pool = KeyPool(Breakers(), clock=Clock())
    up = upstream(UpstreamKey("a", "s", weight=1), UpstreamKey("b", "s", weight=1))
    run(pool.stick("t:sess", "b", "m"))
    assert {run(pool.pick(up, "t:sess")).id for _ in range(20)} == {"b"}
    split = Counter(run(pool.pick(up, f"t:s{n}")).id for n in range(2000))
    assert abs(split["a"] - 1000) < 150


def test_own_rpm_passes_a_key_over_for_the_rest_of_the_minute():
    clock = Clock()
    pool = KeyPool(Breakers(), rates=MemoryKeyRates(clock), clock=clock)
    up = upstream(UpstreamKey("capped", "s", priority=1, rpm=2), UpstreamKey("rest", "s", priority=2))
    assert [run(pool.pick(up, None)).id for _ in range(4)] == ["capped", "capped", "rest", "rest"]
    clock.now += 60
    assert run(pool.pick(up, None)).id == "capped"
    alone = upstream(UpstreamKey("solo", "s", tpm=100))
    pool.rates.spend("solo", 100)  # type: ignore[union-attr]
    assert run(pool.pick(alone, None)) is None


def test_affinity_is_bounded_and_expires():
    clock = Clock()
    store = Affinity(ttl_s=600, max_entries=3, clock=clock)

    async def go() -> None:
        for n in range(5):
            await store.put(f"c{n}", Sticky("k", "m"))
        assert len(store) == 3 and await store.get("c0") is None and await store.get("c4") == Sticky("k", "m")
        clock.now += 601
        assert await store.get("c4") is None

    run(go())


def test_conversation_names_follow_the_clients_order_and_stay_within_a_tenant():
    from gateway.upstreams.conversation import conversation_of, response_chain

    body = {"prompt_cache_key": "pck-1", "metadata": {"user_id": "u-1"}, "previous_response_id": "resp_1"}
    assert conversation_of("t1", {"x-claude-code-session-id": "s-1", "session_id": "c-1"}, body) == "t1:h:s-1"
    assert conversation_of("t1", {"session_id": "c-1"}, body) == "t1:h:c-1"
    assert conversation_of("t1", {}, body) == "t1:pck:pck-1"
    assert conversation_of("t1", {}, {"metadata": {"user_id": "u-1"}}) == "t1:user:u-1"
    assert conversation_of("t1", {}, {"previous_response_id": "resp_1"}) == response_chain("t1", "resp_1")
    assert conversation_of("t2", {"session_id": "c-1"}, {}) != conversation_of("t1", {"session_id": "c-1"}, {})
    assert conversation_of("t1", {}, {"prompt_cache_key": 5, "metadata": "not an object"}) is None
