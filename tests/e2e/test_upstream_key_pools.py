"""Upstream key pools through a running gateway (issue 15): weights, priorities, health, affinity, own limits.

The fake upstream records the credential of every request (``RecordedRequest.credential``) and can answer
per credential (``script_key``), so each test sees which key carried which request.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from support import GatewayServer, Seeder

from gateway.db.tables import UpstreamKeyRow
from gateway.manage import upstream_keys, upstreams
from gateway.testing.fake_upstream import FakeUpstream, Reply


def pool(seed: Seeder, fake: FakeUpstream, keys: list[dict[str, Any]], *, dialect: str = "openai") -> tuple[Any, str]:
    """A tenant whose model ``m`` sits on an upstream whose pool holds ``keys`` (the first is the upstream's own);
    returns the tenant and an sk- key."""
    tenant = seed.tenant()
    base = fake.url + "/v1" if dialect == "openai" else fake.url
    first, *more = keys
    up = seed.upstream(tenant, base_url=base, dialect=dialect, api_key=first["secret"])

    async def add(s: Any) -> None:
        row = await upstreams.get_upstream(s, up.name, tenant=tenant)
        (default,) = (await upstream_keys.keys_of(s, [row.id]))[row.id]
        await upstream_keys.update_key(s, row, default, **{k: v for k, v in first.items() if k != "secret"})
        for spec in more:
            await upstream_keys.add_key(s, row, spec["secret"], seed.box, **{k: v for k, v in spec.items()
                                                                            if k != "secret"})  # fmt: skip

    seed.run(add)
    seed.model(tenant, up, "m", upstream_model="m-id", input_price=1.0, output_price=2.0)
    return tenant, seed.key(tenant).secret


def chat(
    client: httpx.Client, url: str, key: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    return client.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], **body},
        timeout=30,
    )


def carried(fake: FakeUpstream) -> Counter[str]:
    return Counter(r.credential for r in fake.requests)


def key_rows(seed: Seeder) -> dict[str, UpstreamKeyRow]:
    async def rows(s: Any) -> dict[str, UpstreamKeyRow]:
        found = await s.scalars(sa.select(UpstreamKeyRow))
        return {seed.box.decrypt(r.api_key_encrypted, context=f"upstream:{r.upstream_id}"): r for r in found}

    return seed.run(rows)


def test_weights_split_traffic_three_to_one(stack, fake):
    tenant, key = pool(stack.seed, fake, [{"secret": "k-heavy", "weight": 3}, {"secret": "k-light", "weight": 1}])
    with httpx.Client() as client:
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(400))
    split = carried(fake)
    assert split["k-heavy"] + split["k-light"] == 400
    assert abs(split["k-heavy"] / 400 - 0.75) <= 0.08, split
    rows = stack.seed.usage_rows(tenant, expect=400)
    by_key = Counter(r.upstream_key_id for r in rows)
    ids = {r.upstream_key_id for r in rows}
    assert len(ids) == 2 and None not in ids and sorted(by_key.values()) == sorted(split.values())


def test_a_refused_key_is_disabled_with_its_reason_and_traffic_moves(stack, fake):
    tenant, key = pool(stack.seed, fake, [{"secret": "k-revoked"}, {"secret": "k-good"}])
    fake.script_key("k-revoked", Reply(status=401, text="Incorrect API key provided"))
    with httpx.Client() as client:
        answers = [chat(client, stack.url, key) for _ in range(30)]
    assert [r.status_code for r in answers] == [200] * 30
    assert carried(fake)["k-revoked"] == 1  # refused once, then left out
    deadline = time.monotonic() + 5
    while (row := key_rows(stack.seed)["k-revoked"]).state != "disabled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (
        row.state == "disabled" and "401" in (row.disabled_reason or "") and "Incorrect API key" in row.disabled_reason
    )
    assert key_rows(stack.seed)["k-good"].state == "active"
    rows = stack.seed.usage_rows(tenant, expect=30)
    assert len(rows) == 30 and sorted(r.attempts for r in rows)[-1] == 2  # one request, one row, two attempts


def test_the_last_usable_key_is_never_disabled(stack, fake):
    _, key = pool(stack.seed, fake, [{"secret": "k-only"}])
    fake.script_key("k-only", Reply(status=401, text="bad key"))
    with httpx.Client() as client:
        r = chat(client, stack.url, key)
    assert r.status_code == 502 and "authentication" in r.json()["error"]["message"]
    time.sleep(0.3)
    assert key_rows(stack.seed)["k-only"].state == "active"


def test_a_rate_limited_key_cools_for_its_retry_after(stack, fake):
    _, key = pool(stack.seed, fake, [{"secret": "k-busy"}, {"secret": "k-free"}])
    fake.script_key("k-busy", Reply(status=429, text="slow down", headers={"retry-after": "2"}))
    with httpx.Client() as client:
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(20))
        assert carried(fake)["k-busy"] == 1
        fake.script_key("k-busy", None)
        time.sleep(2.2)
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(40))
    assert carried(fake)["k-busy"] > 1  # back after the cooling, weighted like the other


def test_a_lower_priority_key_is_used_only_when_every_better_one_is_out(stack, fake):
    _, key = pool(stack.seed, fake, [{"secret": "k-main", "priority": 1}, {"secret": "k-spare", "priority": 2}])
    with httpx.Client() as client:
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(30))
        assert carried(fake) == Counter({"k-main": 30})
        fake.script_key("k-main", Reply(status=429, text="quota", headers={"retry-after": "30"}))
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(10))
    assert carried(fake) == Counter({"k-main": 31, "k-spare": 10})


def test_a_key_at_its_own_rpm_is_passed_over(stack, fake):
    _, key = pool(
        stack.seed, fake, [{"secret": "k-capped", "priority": 1, "rpm": 3}, {"secret": "k-rest", "priority": 2}]
    )
    if (into := time.time() % 60) > 55:  # the windows are whole clock minutes: not across a new one
        time.sleep(60.2 - into)
    with httpx.Client() as client:
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(8))
    assert carried(fake) == Counter({"k-capped": 3, "k-rest": 5})


def test_a_conversation_keeps_its_key_while_conversations_split_by_weight(stack, fake):
    _, key = pool(stack.seed, fake, [{"secret": "k-a"}, {"secret": "k-b"}], dialect="anthropic")

    def ask(client: httpx.Client, session: str) -> int:
        return client.post(
            stack.url + "/v1/messages",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01", "x-claude-code-session-id": session},
            json={"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        ).status_code

    with httpx.Client() as client:
        assert all(ask(client, "one-session") == 200 for _ in range(50))
        assert len(carried(fake)) == 1, carried(fake)
        fake.reset()
        assert all(ask(client, f"session-{n}") == 200 for n in range(200))
    split = carried(fake)
    assert abs(split["k-a"] - 100) <= 25, split  # binomial(200, 1/2): more than 3.5 sigma out fails


def test_a_conversation_served_by_a_fallback_stays_on_it(stack, fake):
    seed = stack.seed
    tenant = seed.tenant()
    main = seed.upstream(tenant, base_url=fake.url + "/v1", api_key="k-main-up")
    spare = seed.upstream(tenant, base_url=fake.url + "/v1", api_key="k-spare-up")
    seed.model(tenant, spare, "spare", upstream_model="spare-id")
    seed.model(tenant, main, "m", upstream_model="m-id", fallbacks=["spare"])
    key = seed.key(tenant).secret
    session = {"session_id": "codex-session-1"}
    fake.script_key("k-main-up", Reply(status=503, text="overloaded"))
    with httpx.Client() as client:
        first = chat(client, stack.url, key, session)
        assert first.status_code == 200 and first.headers["relay-fallback-model"] == "spare"
        fake.script_key("k-main-up", None)
        fake.reset()
        again = chat(client, stack.url, key, session)
        assert again.status_code == 200 and again.headers["relay-fallback-model"] == "spare"
        assert carried(fake) == Counter({"k-spare-up": 1})  # straight to the fallback: its cache is there
        other = chat(client, stack.url, key, {"session_id": "another"})
    assert "relay-fallback-model" not in other.headers and carried(fake)["k-main-up"] == 1


def test_verdicts_reach_every_gateway(pg_settings, fake):
    """Two gateways on one Postgres and Redis: a 429 and a 401 seen by one keep the other off the key too."""
    first, second = GatewayServer(pg_settings).start(), GatewayServer(pg_settings).start()
    try:
        seed = Seeder(pg_settings)
        _, key = pool(seed, fake, [{"secret": "k-x"}, {"secret": "k-y"}, {"secret": "k-z"}])
        fake.script_key("k-x", Reply(status=429, text="slow", headers={"retry-after": "20"}))
        fake.script_key("k-y", Reply(status=401, text="revoked"))
        with httpx.Client() as client:
            for _ in range(30):  # until the first gateway met both
                assert chat(client, first.url, key).status_code == 200
                if {"k-x", "k-y"} <= set(carried(fake)):
                    break
            time.sleep(0.5)  # the verdicts travel over Redis pub/sub
            before = carried(fake)
            assert all(chat(client, second.url, key).status_code == 200 for _ in range(20))
        after = carried(fake) - before
        assert after == Counter({"k-z": 20}), after
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("door", ["anthropic", "openai"])
def test_a_refused_key_moves_streams_too(stack, fake, door):
    _, key = pool(stack.seed, fake, [{"secret": "k-dead"}, {"secret": "k-live"}], dialect="anthropic")
    fake.script_key("k-dead", Reply(status=403, text="forbidden"))
    with httpx.Client() as client:
        if door == "anthropic":
            r = client.post(
                stack.url + "/v1/messages",
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                json={"model": "m", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert r.status_code == 200 and "message_stop" in r.text
        else:
            r = chat(client, stack.url, key, stream=True)
            assert r.status_code == 200 and "[DONE]" in r.text
        for _ in range(5):
            assert chat(client, stack.url, key).status_code == 200
    assert carried(fake)["k-dead"] <= 1


def test_a_key_enabled_again_through_the_api_is_back_at_once(stack, fake):
    from test_management_api import Api, make_token

    tenant, key = pool(stack.seed, fake, [{"secret": "k-flaky"}, {"secret": "k-steady"}])
    fake.script_key("k-flaky", Reply(status=401, text="temporarily refused"))
    with httpx.Client() as client:
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(10))
        deadline = time.monotonic() + 5
        while (row := key_rows(stack.seed)["k-flaky"]).state != "disabled" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert row.state == "disabled"
        fake.script_key("k-flaky", None)
        api = Api(stack, make_token(stack, tenant, "admin"))
        patched = api.patch(f"/upstreams/{row.upstream_id}/keys/{row.id}", json={"state": "active"})
        assert patched.status_code == 200 and patched.json()["state"] == "active"
        fake.reset()
        assert all(chat(client, stack.url, key).status_code == 200 for _ in range(40))
    assert carried(fake)["k-flaky"] >= 5  # in the pool again well before its refusal's minute is over
