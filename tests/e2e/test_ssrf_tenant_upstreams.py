"""The SSRF guard on tenant upstreams, end to end: at save time (CLI) and at connect time (relay)."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import pytest
from support import GatewayServer, Seeder
from test_cli import ok, relay

from gateway.ssrf import Allowlist, check_url_at_save
from gateway.testing.fake_upstream import Reply


@pytest.fixture
def guarded(stack):
    """A gateway with no allowlist: nothing on loopback or private ranges is reachable for tenants.

    Retries on: a refusal by the guard must not be retried (issue 13)."""
    server = GatewayServer(replace(stack.settings, upstream_allowlist="", upstream_retries=2)).start()
    yield server
    server.stop()


def test_tenant_upstream_on_loopback_is_refused_at_connect_time(guarded, fake):
    seed = Seeder(guarded.settings)
    tenant = seed.tenant()
    # Saved without the save-time check, as a row written before a DNS change (rebinding) would be.
    up = seed.upstream(
        tenant, base_url=fake.url.replace("127.0.0.1", "localhost") + "/v1", allowlist=Allowlist.parse("localhost")
    )
    seed.model(tenant, up, "rebound")
    key = seed.key(tenant).secret
    fake.enqueue(Reply(text="must not be reached"))
    r = httpx.post(
        guarded.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "rebound", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 502, r.text
    assert fake.requests == []
    assert "up-secret-key" not in r.text
    # The truth, and what to do about it (it said "cannot connect to upstream (ClientConnectorError)").
    error = r.json()["error"]
    assert "address not allowed" in error["message"]
    assert f"RELAY_UPSTREAM_ALLOWLIST=localhost:{fake.url.rsplit(':', 1)[1]}" in error["message"]
    assert "names the local host" in error["message"]
    assert r.headers["x-should-retry"] == "false"
    rows = seed.usage_rows(tenant, expect=1)
    assert [(row.status, row.attempts, row.error_code) for row in rows] == [(502, 1, "upstream_address_not_allowed")]


def test_platform_upstream_on_loopback_is_trusted(guarded, fake):
    seed = Seeder(guarded.settings)
    name = f"trusted-{id(fake)}"
    up = seed.upstream(None, base_url=fake.url + "/v1", name=name)
    seed.model(None, up, name)
    key = seed.key(seed.tenant()).secret
    fake.enqueue(Reply(text="platform reached"))
    try:
        r = httpx.post(
            guarded.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "platform reached"
    finally:
        seed.run(lambda s: _delete_model(s, name))


async def _delete_model(session, name):
    import sqlalchemy as sa

    from gateway.db.tables import ModelRow

    await session.execute(sa.delete(ModelRow).where(ModelRow.name == name, ModelRow.tenant_id.is_(None)))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434/v1",
        "http://localhost:8000/v1",
        "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/v1",
        "http://2130706433/v1",
        "http://0.0.0.0:80/v1",
        "http://10.1.2.3/v1",
    ],
)
def test_cli_refuses_hostile_tenant_base_urls(stack, url):
    tenant = f"ssrf-{abs(hash(url))}"
    relay(stack, "tenants", "create", tenant)
    r = relay(
        stack,
        "upstreams",
        "add",
        "evil",
        "--tenant",
        tenant,
        "--dialect",
        "openai",
        "--base-url",
        url,
        env={"RELAY_UPSTREAM_ALLOWLIST": ""},
    )
    assert r.returncode == 1 and "base URL refused" in r.stderr, r.stderr
    # Says how to allow it (a local model server), naming this URL's own host and port: the line works as given.
    suggested = re.search(r"RELAY_UPSTREAM_ALLOWLIST=(\S+)", r.stderr)
    assert suggested is not None, r.stderr
    check_url_at_save(url, Allowlist.parse(suggested.group(1)))


def test_allowlist_lets_a_local_ollama_in(stack):
    tenant = f"ssrf-ok-{id(stack)}"
    relay(stack, "tenants", "create", tenant)
    ok(
        relay(
            stack,
            "upstreams",
            "add",
            "ollama",
            "--tenant",
            tenant,
            "--dialect",
            "openai",
            "--base-url",
            "http://127.0.0.1:11434/v1",
            env={"RELAY_UPSTREAM_ALLOWLIST": "127.0.0.1:11434"},
        )
    )
    r = relay(
        stack,
        "upstreams",
        "add",
        "other-port",
        "--tenant",
        tenant,
        "--dialect",
        "openai",
        "--base-url",
        "http://127.0.0.1:8080/v1",
        env={"RELAY_UPSTREAM_ALLOWLIST": "127.0.0.1:11434"},
    )
    assert r.returncode == 1 and "loopback" in r.stderr
