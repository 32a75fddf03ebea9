"""Gateway-wide settings seen end to end: RELAY_ROOT_PATH and RELAY_ANTHROPIC_BETA_DEFAULTS."""

from __future__ import annotations

from dataclasses import replace

import anthropic
import httpx
import openai
import pytest
from support import GatewayServer, Seeder

from gateway.testing.fake_upstream import Reply


@pytest.fixture
def prefixed(stack):
    server = GatewayServer(replace(stack.settings, root_path="/claude_api")).start()
    yield server
    server.stop()


def test_both_doors_under_the_prefix(prefixed, fake):
    seed = Seeder(prefixed.settings)
    tenant = seed.tenant()
    up_a = seed.upstream(tenant, base_url=fake.url, dialect="anthropic")
    up_o = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai")
    seed.model(tenant, up_a, "pre-claude")
    seed.model(tenant, up_o, "pre-gpt")
    key = seed.key(tenant).secret
    assert prefixed.url.endswith("/claude_api")

    fake.enqueue(Reply(text="prefixed anthropic"), Reply(text="prefixed openai"))
    msg = anthropic.Anthropic(base_url=prefixed.url, api_key=key, max_retries=0).messages.create(
        model="pre-claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].text == "prefixed anthropic"
    chat = openai.OpenAI(base_url=prefixed.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
        model="pre-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "prefixed openai"
    assert httpx.head(prefixed.url).status_code == 200
    assert httpx.head(prefixed.url + "/api/hello").status_code == 200  # Claude Code 2.1.3xx's pre-connect
    # Outside the prefix nothing is served, and the 404 is still a JSON error.
    r = httpx.post(prefixed.url.removesuffix("/claude_api") + "/v1/messages", headers={"x-api-key": key}, json={})
    assert r.status_code == 404 and r.json()["type"] == "error"


@pytest.fixture
def with_beta_defaults(stack):
    server = GatewayServer(
        replace(stack.settings, anthropic_beta_defaults=("prompt-caching-2024-07-31", "ops-x"))
    ).start()
    yield server
    server.stop()


def test_operator_beta_defaults_merge_with_the_clients_and_skip_openai_upstreams(with_beta_defaults, fake):
    seed = Seeder(with_beta_defaults.settings)
    tenant = seed.tenant()
    seed.model(tenant, seed.upstream(tenant, base_url=fake.url, dialect="anthropic"), "beta-claude")
    seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai"), "beta-gpt")
    key = seed.key(tenant).secret
    headers = {"x-api-key": key, "anthropic-beta": "ops-x, interleaved-thinking-2025-05-14,ops-x"}
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(with_beta_defaults.url + "/v1/messages", headers=headers, json={"model": "beta-claude", **body})
    assert r.status_code == 200, r.text
    assert fake.requests[-1].headers["anthropic-beta"] == (
        "prompt-caching-2024-07-31,ops-x,interleaved-thinking-2025-05-14"
    )
    r = httpx.post(with_beta_defaults.url + "/v1/messages", headers=headers, json={"model": "beta-gpt", **body})
    assert r.status_code == 200, r.text
    assert "anthropic-beta" not in fake.requests[-1].headers
    assert "anthropic-version" not in fake.requests[-1].headers


@pytest.fixture
def quick_keepalive(stack):
    server = GatewayServer(replace(stack.settings, keepalive_s=0.2)).start()
    yield server
    server.stop()


def test_silent_upstream_gets_keepalives_in_each_dialect(quick_keepalive, fake):
    seed = Seeder(quick_keepalive.settings)
    tenant = seed.tenant()
    seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1"), "slow-gpt")
    key = seed.key(tenant).secret
    fake.enqueue(Reply(text="a b c", chunks=3, chunk_delay_s=0.7, usage=(5, 3)))
    with anthropic.Anthropic(base_url=quick_keepalive.url, api_key=key, max_retries=0).messages.stream(
        model="slow-gpt", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "a b c"  # the SDK parses a stream with pings in it
    fake.enqueue(Reply(text="a b c", chunks=3, chunk_delay_s=0.7))
    r = httpx.post(
        quick_keepalive.url + "/v1/messages",
        headers={"x-api-key": key},
        json={"model": "slow-gpt", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    events = [line for line in r.text.splitlines() if line.startswith("event: ")]
    start = events.index("event: content_block_start")
    assert events[start:].count("event: ping") >= 2  # while the upstream is silent between chunks

    fake.enqueue(Reply(text="a b c", chunks=3, chunk_delay_s=0.7))
    r = httpx.post(
        quick_keepalive.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "slow-gpt", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ": keep-alive" in r.text and r.text.rstrip().endswith("data: [DONE]")
    chunks = list(
        openai.OpenAI(base_url=quick_keepalive.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="slow-gpt", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert chunks  # the OpenAI SDK skips the comments


@pytest.fixture
def with_metrics(stack):
    server = GatewayServer(replace(stack.settings, metrics_token="metrics-secret-token")).start()
    yield server
    server.stop()


def test_metrics_need_the_token_and_count_requests_tokens_and_cost(with_metrics, fake):
    seed = Seeder(with_metrics.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", name="metered-up")
    seed.model(tenant, up, "metered-gpt", input_price=1.0, output_price=2.0)
    key = seed.key(tenant).secret
    fake.enqueue(Reply(text="hi", usage=(100, 10)))
    r = httpx.post(
        with_metrics.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "metered-gpt", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200
    assert httpx.get(with_metrics.url + "/metrics").status_code == 401
    assert httpx.get(with_metrics.url + "/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    text = httpx.get(with_metrics.url + "/metrics", headers={"authorization": "Bearer metrics-secret-token"}).text
    assert 'relay_requests_total{door="openai",model="metered-gpt",status="200"}' in text
    assert 'relay_tokens_total{kind="input",model="metered-gpt"}' in text
    assert 'relay_cost_micro_usd_total{model="metered-gpt"}' in text
    assert "relay_request_duration_seconds_bucket" in text
    assert key not in text and "up-secret-key" not in text


def test_metrics_are_off_without_a_token(stack):
    assert httpx.get(stack.url + "/metrics").status_code == 404


def test_gc_tuning_freezes_startup_objects_and_raises_the_young_threshold(stack):
    """On by default (RELAY_GC_TUNING); the test harness turns it off because it is process-wide."""
    import gc

    before = gc.get_threshold()
    server = GatewayServer(replace(stack.settings, gc_tuning=True)).start()
    try:
        assert gc.get_threshold() == (10_000, 50, 100)
        assert gc.get_freeze_count() > 10_000  # the app, SQLAlchemy's metadata, the catalog...
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()
        gc.unfreeze()
        gc.set_threshold(*before)


def test_gc_tuning_can_be_turned_off():
    from gateway.settings import Settings

    assert Settings.from_env({"RELAY_SECRET_KEY": "x" * 32}).gc_tuning is True
    assert Settings.from_env({"RELAY_SECRET_KEY": "x" * 32, "RELAY_GC_TUNING": "off"}).gc_tuning is False
