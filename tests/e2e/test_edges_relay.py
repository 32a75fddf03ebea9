"""Edge cases of conversion.md §11 that belong to the relay rather than the pure converters (12-14, 52, 72)."""

from __future__ import annotations

import time

import httpx

from gateway.testing.fake_upstream import Reply


def test_edge_13_beta_query_on_every_anthropic_path(world):
    body = {"model": "my-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(world.url + "/v1/messages?beta=true", headers={"x-api-key": world.key}, json=body)
    assert r.status_code == 200
    r = httpx.post(
        world.url + "/v1/messages/count_tokens?beta=true",
        headers={"x-api-key": world.key},
        json={"model": "my-gpt", "messages": body["messages"]},
    )
    assert r.status_code == 200 and r.json()["input_tokens"] > 0


def test_edge_14_claude_code_bearer_auth_and_both_headers(world):
    body = {"model": "my-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(world.url + "/v1/messages", headers={"authorization": f"Bearer {world.key}"}, json=body)
    assert r.status_code == 200
    both = {"authorization": f"Bearer {world.key}", "x-api-key": world.key}  # ANTHROPIC_AUTH_TOKEN + _API_KEY
    assert httpx.post(world.url + "/v1/messages", headers=both, json=body).status_code == 200


def test_edge_52_status_decided_before_the_first_byte(world):
    """An upstream 429 on a streaming request is a 429 to the client, not a 200 that then carries an error."""
    for model, path, body in (
        ("my-gpt", "/v1/messages", {"max_tokens": 5}),
        ("my-claude", "/v1/chat/completions", {}),
    ):
        world.fake.enqueue(Reply(status=429, text="slow down", headers={"retry-after": "7"}))
        r = httpx.post(
            world.url + path,
            headers={"x-api-key": world.key},
            json={"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}], **body},
        )
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"] == "7"
        assert r.headers["content-type"].startswith("application/json")


def test_edge_72_client_disconnect_cancels_the_upstream_and_is_metered(stack, world):
    world.fake.enqueue(Reply(text="a long answer " * 20, chunks=20, chunk_delay_s=0.2, usage=(30, 60)))
    before = world.fake.cancelled
    with httpx.stream(
        "POST",
        world.url + "/v1/messages",
        headers={"x-api-key": world.key},
        json={"model": "my-gpt", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "talk"}]},
    ) as r:
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
    deadline = time.monotonic() + 5
    while world.fake.cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert world.fake.cancelled == before + 1  # the relay stopped paying for an answer nobody reads
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert len(rows) == 1 and rows[0].status == 499 and rows[0].stream
    assert rows[0].input_tokens > 0  # estimated from the request when the upstream never reported usage


def test_a_cut_passthrough_stream_is_billed_for_what_was_relayed(stack, world):
    """Usage the upstream never reported (cut before the end) is estimated, and marked estimated."""
    for model, path, extra in (
        ("my-gpt", "/v1/chat/completions", {}),
        ("my-claude", "/v1/messages", {"max_tokens": 50}),
    ):
        world.fake.enqueue(Reply(text="word " * 40, chunks=10, cut_after=6, usage=(12, 50)))
        r = httpx.post(
            world.url + path,
            headers={"x-api-key": world.key},
            json={"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}], **extra},
        )
        assert r.status_code == 200 and "error" in r.text
    rows = stack.seed.usage_rows(world.tenant, expect=2)
    for row in rows:
        assert row.estimated and row.output_tokens > 0 and row.status == 502, row.model
        assert row.input_tokens > 0
