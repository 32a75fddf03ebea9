"""The pool's alerts reach webhooks (issue 15): ``upstream_key.disabled`` when the provider refuses a key of a
pool, ``upstream.circuit_open`` when a key's circuit opens; both signed, both once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from test_webhooks import Hooks, eventually, running_hooks, signed

from gateway.manage import upstream_keys, upstreams
from gateway.testing.fake_upstream import Reply


@pytest.fixture(scope="module")
def hooks(backend: tuple[str, Any], _fake_upstream: Any) -> Iterator[Hooks]:
    name, settings = backend
    yield from running_hooks((name, replace(settings, breaker_threshold=2, breaker_cooldown_s=30.0)), _fake_upstream)


def pooled(hooks: Hooks, fake: Any, *secrets: str) -> tuple[Any, Any, str]:
    seed = hooks.seed
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", api_key=secrets[0])

    async def add(s: Any) -> None:
        row = await upstreams.get_upstream(s, up.name, tenant=tenant)
        for secret in secrets[1:]:
            await upstream_keys.add_key(s, row, secret, seed.box)

    seed.run(add)
    seed.model(tenant, up, "m", upstream_model="m-id")
    return tenant, up, seed.key(tenant).secret


def ask(hooks: Hooks, key: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(hooks.url + "/v1/chat/completions", headers=headers, json=body, timeout=30).status_code


def test_a_refused_pool_key_raises_upstream_key_disabled_once(hooks, fake):
    tenant, up, key = pooled(hooks, fake, "pk-refused", "pk-fine")
    path = f"/keys/{tenant.id}"
    hook = hooks.add(tenant, path, ["upstream_key.disabled"])
    fake.script_key("pk-refused", Reply(status=401, text="key revoked by the provider"))
    assert all(ask(hooks, key) == 200 for _ in range(12))
    got = hooks.receiver.wait(path, 1)
    eventually(lambda: len(hooks.deliveries(hook.row.id)) >= 1)
    doc = got[0].doc
    assert doc["type"] == "upstream_key.disabled" and signed(got[0], hook.secret)
    assert doc["tenant_id"] == tenant.id and doc["data"]["upstream_id"] == up.id
    assert "401" in doc["data"]["reason"] and "key revoked by the provider" in doc["data"]["reason"]
    assert "pk-refused" not in got[0].body.decode()  # the key itself never travels
    assert all(ask(hooks, key) == 200 for _ in range(5))
    assert len(hooks.receiver.at(path)) == 1


def test_a_key_whose_circuit_opens_raises_upstream_circuit_open(hooks, fake):
    tenant, up, key = pooled(hooks, fake, "pk-dying", "pk-alive")
    path = f"/circuit/{tenant.id}"
    hook = hooks.add(tenant, path, ["upstream.circuit_open"])
    fake.script_key("pk-dying", Reply(status=503, text="overloaded"))
    for _ in range(20):
        assert ask(hooks, key) == 200  # a 503 moves the request to the live key at once
        if len(hooks.receiver.at(path)) >= 1:
            break
    got = hooks.receiver.wait(path, 1)
    assert got[0].doc["type"] == "upstream.circuit_open" and signed(got[0], hook.secret)
    assert got[0].doc["data"]["upstream_id"] == up.id and got[0].doc["data"]["key_id"]
