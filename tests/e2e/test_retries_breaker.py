"""Retries on the same upstream and the circuit breaker, before the first byte only."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest
from support import GatewayServer, Seeder, free_port

from gateway.testing.fake_upstream import Reply


@pytest.fixture
def retrying(stack):
    server = GatewayServer(
        replace(stack.settings, upstream_retries=2, breaker_threshold=3, breaker_cooldown_s=2.0)
    ).start()
    yield server
    server.stop()


def setup(server, fake, *, base_url=None, fallbacks=()):
    seed = Seeder(server.settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=base_url or fake.url + "/v1")
    if fallbacks:
        seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1"), "spare", upstream_model="spare-id")
    seed.model(tenant, up, "m", upstream_model="m-id", fallbacks=list(fallbacks))
    return seed, tenant, seed.key(tenant).secret


def ask(server, key, **extra):
    return httpx.post(
        server.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra},
        timeout=30,
    )


def test_5xx_is_retried_with_backoff_and_only_the_success_is_billed(retrying, fake):
    seed, tenant, key = setup(retrying, fake)
    fake.enqueue(
        Reply(status=502, text="flaky"), Reply(status=503, text="flaky"), Reply(text="third time", usage=(3, 2))
    )
    r = ask(retrying, key)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "third time"
    assert len(fake.requests) == 3
    # One request, one row (issue 13): the two failed attempts are counted in it, not beside it.
    rows = seed.usage_rows(tenant, expect=3, timeout_s=1.0)
    assert [(row.status, row.attempts, row.served_model, row.output_tokens) for row in rows] == [(200, 3, None, 2)]
    assert rows[0].request_id == r.headers["request-id"]


def test_short_retry_after_is_honoured_and_long_one_is_passed_on(retrying, fake):
    _, _, key = setup(retrying, fake)
    fake.enqueue(Reply(status=429, text="wait a bit", headers={"retry-after": "1"}), Reply(text="after waiting"))
    started = time.monotonic()
    r = ask(retrying, key)
    assert r.status_code == 200 and time.monotonic() - started >= 0.9
    fake.enqueue(Reply(status=429, text="come back later", headers={"retry-after": "120"}), Reply(text="unused"))
    r = ask(retrying, key)
    assert r.status_code == 429 and r.headers["retry-after"] == "120"  # the status keeps its meaning


def test_client_errors_and_streams_after_the_first_byte_are_not_retried(retrying, fake):
    _, _, key = setup(retrying, fake)
    fake.enqueue(Reply(status=400, text="bad"), Reply(text="unused"))
    assert ask(retrying, key).status_code == 400 and len(fake.requests) == 1
    fake.reset()
    fake.enqueue(Reply(text="one two three four", chunks=4, cut_after=2), Reply(text="unused"))
    r = ask(retrying, key, stream=True)
    assert r.status_code == 200 and '"error"' in r.text and len(fake.requests) == 1


def test_breaker_opens_on_a_dead_upstream_sends_to_the_fallback_at_once_then_probes(retrying, fake):
    seed, tenant, key = setup(retrying, fake, base_url=f"http://127.0.0.1:{free_port()}/v1", fallbacks=["spare"])
    fake.set_default(Reply(text="spare answers"))
    for _ in range(2):  # 3 connection failures (1 + 2 retries) open the breaker
        r = ask(retrying, key)
        assert r.status_code == 200 and r.headers["relay-fallback-model"] == "spare"
    breakers = retrying.services.relay.breakers
    assert "open" in breakers.states().values()
    r = ask(retrying, key)
    assert r.status_code == 200
    # No connection attempt while open: one refused attempt (circuit_open, no retry, no backoff), then the spare.
    row = next(x for x in seed.usage_rows(tenant, expect=3) if x.request_id == r.headers["request-id"])
    assert (row.attempts, row.served_model) == (2, "spare")
    time.sleep(2.1)  # cooldown over: one probe goes to the dead upstream, fails, and re-opens
    assert ask(retrying, key).status_code == 200
    assert "open" in breakers.states().values()


@pytest.fixture
def short_deadline(stack):
    server = GatewayServer(replace(stack.settings, total_timeout_s=2.0, idle_timeout_s=1.0, keepalive_s=5.0)).start()
    yield server
    server.stop()


def test_slow_loris_upstream_is_cut_at_the_total_deadline(short_deadline, fake):
    """An upstream that trickles a chunk every 0.5 s never trips the idle timeout; the total deadline ends it."""
    seed, tenant, key = setup(short_deadline, fake)
    fake.enqueue(Reply(text="drip " * 100, chunks=100, chunk_delay_s=0.5))
    before = fake.cancelled
    started = time.monotonic()
    r = ask(short_deadline, key, stream=True)
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert 2.0 <= elapsed <= 4.0  # the deadline (+ one chunk gap), not the 50 s the upstream wanted
    assert "exceeded the total time limit" in r.text
    deadline = time.monotonic() + 5
    while fake.cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.cancelled == before + 1  # no upstream socket left open
    rows = seed.usage_rows(tenant, expect=1)
    assert rows[0].status == 502 and rows[0].error_code == "upstream_timeout"


@pytest.fixture
def patient_limits_short_total(stack):
    """Generous first-byte and idle limits, a 2 s total: only the total deadline can end these calls."""
    settings = replace(
        stack.settings, total_timeout_s=2.0, first_byte_timeout_s=30.0, idle_timeout_s=30.0, keepalive_s=5.0
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def test_the_total_deadline_covers_the_wait_for_response_headers(patient_limits_short_total, fake):
    """Issue 12, item 8: an upstream that never answers was cut at the 30 s first-byte limit, not the 10 s total."""
    seed, tenant, key = setup(patient_limits_short_total, fake)
    fake.enqueue(Reply(text="too late", delay_s=20))
    started = time.monotonic()
    r = ask(patient_limits_short_total, key)
    assert time.monotonic() - started < 4
    assert r.status_code == 504 and "total time limit" in r.json()["error"]["message"]
    assert seed.usage_rows(tenant, expect=1)[0].error_code == "upstream_timeout"


def test_the_total_deadline_fires_on_a_timer_inside_a_silent_stream(patient_limits_short_total, fake):
    """Issue 12, item 8: inside a stream the deadline was checked only when bytes or a keep-alive arrived."""
    seed, tenant, key = setup(patient_limits_short_total, fake)
    fake.enqueue(Reply(text="one two three", chunks=3, chunk_delay_s=20))
    started = time.monotonic()
    r = ask(patient_limits_short_total, key, stream=True)
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert 2.0 <= elapsed < 3.5  # the deadline, not the 5 s keep-alive tick nor the upstream's 20 s
    assert "exceeded the total time limit" in r.text
    assert ": ping" not in r.text  # no keep-alive pretending the call goes on after its deadline
    rows = seed.usage_rows(tenant, expect=1)
    assert rows[0].status == 502 and rows[0].error_code == "upstream_timeout"
