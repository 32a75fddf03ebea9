"""Built-in catalog: providers turned on by the operator (CLI or environment), price overrides, visibility."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from support import GatewayServer, Seeder
from test_cli import ok, relay

from gateway.testing.fake_upstream import Reply


@pytest.fixture
def deepseek_on(stack, fake):
    ok(
        relay(
            stack,
            "providers",
            "enable",
            "deepseek",
            "--api-key-stdin",
            "--base-url",
            fake.url + "/v1",
            stdin="platform-deepseek-key\n",
        )
    )
    yield
    ok(relay(stack, "providers", "disable", "deepseek"))


def test_catalog_model_routes_after_enable_with_catalog_price_and_override(stack, fake, deepseek_on):
    tenant = stack.seed.tenant()
    key = stack.seed.key(tenant, allow_custom_models=False).secret
    models = httpx.get(stack.url + "/v1/models", headers={"authorization": f"Bearer {key}"}).json()["data"]
    names = {m["id"] for m in models}
    assert {"deepseek-flash", "deepseek-v4-pro"} <= names
    assert not any(n.startswith("claude-") for n in names)  # anthropic is not on

    fake.enqueue(Reply(text="from the catalog", usage=(1000, 100)))
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "deepseek-flash", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "deepseek-flash"
    sent = fake.requests[-1]
    assert sent.headers["authorization"] == "Bearer platform-deepseek-key"
    assert sent.json["model"] == "deepseek-flash"
    row = stack.seed.usage_rows(tenant, expect=1)[0]
    assert row.cost_micro_usd == round(1000 * 0.3 + 100 * 1.2)  # the catalog's prices

    ok(relay(stack, "catalog", "price", "deepseek-flash", "--input-price", "2", "--output-price", "10"))
    fake.enqueue(Reply(text="repriced", usage=(1000, 100)))
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "deepseek-flash", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    rows = stack.seed.usage_rows(tenant, expect=2)
    assert rows[-1].cost_micro_usd == 1000 * 2 + 100 * 10
    listing = ok(relay(stack, "catalog", "list", "--provider", "deepseek"))
    assert "deepseek-flash" in listing and "in $2 out $10" in listing and "(deepseek, openai, on)" in listing


def test_the_catalog_listing_says_how_to_turn_each_provider_on(stack):
    """A keyless provider (a local Ollama) is switched on, not given a key (it said "set …_API_KEY")."""
    unset = ("RELAY_PROVIDER_OLLAMA_ENABLED", "RELAY_PROVIDER_OLLAMA_API_KEY", "RELAY_PROVIDER_OPENAI_API_KEY")
    env = dict.fromkeys(unset, "")
    listing = ok(relay(stack, "catalog", "list", "--provider", "ollama", env=env))
    assert "off: set RELAY_PROVIDER_OLLAMA_ENABLED=1 (no key needed)" in listing, listing
    listing = ok(relay(stack, "catalog", "list", "--provider", "openai", env=env))
    assert "off: set RELAY_PROVIDER_OPENAI_API_KEY or run `relay providers enable openai --api-key-env" in listing


def test_disabled_provider_models_are_not_found(stack, fake, deepseek_on):
    ok(relay(stack, "providers", "disable", "deepseek"))
    key = stack.seed.key(stack.seed.tenant()).secret
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "deepseek-flash", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404


def test_environment_turns_a_provider_on(stack):
    env = {"RELAY_PROVIDER_MOONSHOT_API_KEY": "env-moonshot-key"}
    server = GatewayServer(replace(stack.settings, provider_env=env)).start()
    try:
        seed = Seeder(server.settings)
        key = seed.key(seed.tenant()).secret
        names = {
            m["id"]
            for m in httpx.get(server.url + "/v1/models", headers={"authorization": f"Bearer {key}"}).json()["data"]
        }
        assert any(n.startswith("kimi-") for n in names)
        assert "deepseek-flash" not in names
    finally:
        server.stop()
    listing = ok(relay(stack, "providers", "list", env=env))
    assert "moonshot     on   key: environment" in listing


def test_cli_errors(stack):
    r = relay(stack, "providers", "enable", "nosuch")
    assert r.returncode == 1 and "not in the catalog" in r.stderr
    r = relay(stack, "providers", "enable", "openai")
    assert r.returncode == 1 and "needs an API key" in r.stderr
    r = relay(stack, "catalog", "price", "deepseek-flash")
    assert r.returncode == 1 and "at least one" in r.stderr
    r = relay(stack, "catalog", "price", "deepseek-flash", "--input-price", "-1")
    assert r.returncode == 1 and "negative" in r.stderr
    r = relay(stack, "catalog", "price", "no-such-model", "--input-price", "1")
    assert r.returncode == 1 and "not in the catalog" in r.stderr
