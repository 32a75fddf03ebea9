"""Two gateways on one Postgres and one Redis: a change made on one is seen by the other at once."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import httpx
import pytest
from support import GatewayServer, Seeder
from test_admin_auth import signed_in

from gateway.manage import tokens
from gateway.testing.fake_upstream import Reply


@pytest.fixture
def pair(pg_settings):
    slow_caches = replace(pg_settings, key_cache_ttl_s=60.0, route_cache_ttl_s=60.0)
    a, b = GatewayServer(slow_caches).start(), GatewayServer(slow_caches).start()
    yield a, b
    a.stop()
    b.stop()


def test_revocation_and_model_changes_reach_every_gateway_without_waiting_for_ttls(pair, fake):
    a, b = pair
    seed = Seeder(a.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1")
    seed.model(tenant, up, "shared-model")
    new = seed.key(tenant)
    token = seed.run(lambda s: tokens.create_token(s, tenant=tenant, secret_key=a.settings.secret_key)).secret
    fake.set_default(Reply(text="ok"))
    body = {"model": "shared-model", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {new.secret}"}
    for gw in (a, b):  # both now hold the key and the model table in their caches (60 s)
        assert httpx.post(gw.url + "/v1/chat/completions", headers=headers, json=body).status_code == 200

    api = {"authorization": f"Bearer {token}"}
    r = httpx.post(a.url + f"/api/v1/keys/{new.row.id}/revoke", headers=api)
    assert r.status_code == 200, r.text
    codes = []
    for _ in range(20):  # well under the 60 s cache lifetime
        codes.append(httpx.post(b.url + "/v1/chat/completions", headers=headers, json=body).status_code)
        if codes[-1] == 401:
            break
    assert codes[-1] == 401

    other = seed.key(tenant).secret
    models = httpx.get(a.url + "/api/v1/models", headers=api).json()
    model_id = next(m["id"] for m in models if m["name"] == "shared-model")
    assert httpx.delete(a.url + f"/api/v1/models/{model_id}", headers=api).status_code in (200, 204)
    r = httpx.post(b.url + "/v1/chat/completions", headers={"authorization": f"Bearer {other}"}, json=body)
    assert r.status_code == 404


def test_a_key_revoked_in_the_admin_ui_stops_on_every_gateway(pair, fake):
    """Issue 12.10: the admin UI cleared only its own worker's cache; it now broadcasts like the API."""
    a, b = pair
    seed = Seeder(a.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1")
    seed.model(tenant, up, "ui-shared-model")
    new = seed.key(tenant)
    fake.set_default(Reply(text="ok"))
    body = {"model": "ui-shared-model", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {new.secret}"}
    for gw in (a, b):  # both hold the key in their 60 s caches
        assert httpx.post(gw.url + "/v1/chat/completions", headers=headers, json=body).status_code == 200
    owner = signed_in(SimpleNamespace(url=a.url, seed=seed), tenant)
    r = owner.post(f"/keys/{new.row.id}/revoke", csrf_from=f"/keys/{new.row.id}")
    assert r.status_code == 303
    codes = []
    for _ in range(20):  # well under the 60 s cache lifetime
        codes.append(httpx.post(b.url + "/v1/chat/completions", headers=headers, json=body).status_code)
        if codes[-1] == 401:
            break
    assert codes[-1] == 401
