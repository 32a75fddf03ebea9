"""Fallback models: tried on connect error, timeout, 429 or 5xx before the first byte — never after it."""

from __future__ import annotations

import json

import httpx
import pytest
from support import free_port

from gateway.testing.fake_upstream import Reply


@pytest.fixture
def chain(stack, fake):
    """primary -> (down) -> backup: three models of one tenant, the first two with fallbacks."""
    seed = stack.seed
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1")
    down = seed.upstream(tenant, base_url=f"http://127.0.0.1:{free_port()}/v1")
    seed.model(tenant, up, "backup", upstream_model="backup-id")
    seed.model(tenant, down, "dead", upstream_model="dead-id", fallbacks=["backup"])
    seed.model(tenant, up, "primary", upstream_model="primary-id", fallbacks=["no-such-model", "backup"])
    key = seed.key(tenant).secret
    return tenant, key


def ask(stack, key, model, *, stream=False):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(stack.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 529])
def test_upstream_error_before_the_first_byte_falls_back(stack, fake, chain, status):
    tenant, key = chain
    fake.enqueue(Reply(status=status, text="primary is unwell"), Reply(text="served by backup", usage=(4, 2)))
    r = ask(stack, key, "primary")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "served by backup"
    assert r.json()["model"] == "backup" and r.headers["relay-fallback-model"] == "backup"
    assert [q.json["model"] for q in fake.requests] == ["primary-id", "backup-id"]
    # One request, one row (issue 13): asked for "primary", answered by "backup", two attempts.
    rows = stack.seed.usage_rows(tenant, expect=2, timeout_s=1.0)
    assert [(row.model, row.served_model, row.attempts, row.status, row.output_tokens) for row in rows] == [
        ("primary", "backup", 2, 200, 2)
    ]
    assert rows[0].request_id == r.headers["request-id"]


def test_connection_refused_falls_back(stack, fake, chain):
    _, key = chain
    fake.enqueue(Reply(text="backup after a dead upstream"))
    r = ask(stack, key, "dead", stream=True)
    assert r.status_code == 200
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == "backup after a dead upstream"
    assert r.headers["relay-fallback-model"] == "backup"
    assert [q.json["model"] for q in fake.requests] == ["backup-id"]


def test_client_errors_do_not_fall_back(stack, fake, chain):
    _, key = chain
    fake.enqueue(Reply(status=400, text="bad request from upstream"), Reply(text="must not be used"))
    r = ask(stack, key, "primary")
    assert r.status_code == 400 and "bad request from upstream" in r.text
    assert len(fake.requests) == 1


def test_no_fallback_after_the_first_byte(stack, fake, chain):
    tenant, key = chain
    fake.enqueue(Reply(text="one two three four five six", chunks=6, cut_after=3), Reply(text="must not be used"))
    r = ask(stack, key, "primary", stream=True)
    assert r.status_code == 200
    assert '"error"' in r.text  # the stream ends with the dialect's error event
    assert len(fake.requests) == 1
    rows = stack.seed.usage_rows(tenant, expect=1)
    assert len(rows) == 1 and rows[0].model == "primary"


def test_last_fallback_failure_is_reported(stack, fake, chain):
    _, key = chain
    fake.enqueue(Reply(status=503, text="primary down"), Reply(status=503, text="backup down too"))
    r = ask(stack, key, "primary")
    assert r.status_code == 503 and "backup down too" in r.text
