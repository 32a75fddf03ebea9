"""Output limits that never break a call: a converted request whose ``max_tokens`` an upstream refuses,
stating its limit, is retried once clamped, and the limit is remembered for the model (issue 14).

Claude Code asks for ``max_tokens: 128000``; the fake upstream here refuses more than 8192 in
DeepSeek's words, as a real DeepSeek does.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import sqlalchemy as sa

from gateway.db.tables import AuditLog, ModelRow
from gateway.testing.fake_upstream import Reply


def claude(world: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0, timeout=30)


def asked(world: Any) -> list[int]:
    return [r.json["max_tokens"] for r in world.fake.requests]


def profile_of(stack: Any, world: Any, name: str) -> dict[str, Any]:
    query = sa.select(ModelRow.profile).where(ModelRow.tenant_id == world.tenant.id, ModelRow.name == name)
    deadline = time.monotonic() + 5
    while True:
        profile: dict[str, Any] = stack.seed.run(lambda s: s.scalar(query))
        if "max_output_tokens" in profile or time.monotonic() > deadline:
            return profile
        time.sleep(0.05)


def test_a_stated_limit_is_retried_clamped_then_remembered(stack, world):
    world.fake.max_output_tokens = 8192
    world.fake.enqueue(Reply(text="clamped and answered", usage=(5, 3)), Reply(text="second call", usage=(5, 2)))
    raw = claude(world).messages.with_raw_response.create(
        model="my-gpt", max_tokens=128000, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().content[0].text == "clamped and answered"
    assert "max_tokens_clamped" in raw.headers["relay-conversion-notes"]
    assert asked(world) == [128000, 8192]
    # One request, one row: the refused try is an attempt of it.
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert [(row.status, row.attempts, row.output_tokens) for row in rows] == [(200, 2, 3)]

    assert profile_of(stack, world, "my-gpt")["max_output_tokens"] == 8192
    mine = (AuditLog.action == "model.learned", AuditLog.tenant_id == world.tenant.id)
    learned = stack.seed.run(lambda s: s.scalar(sa.select(AuditLog.detail).where(*mine)))
    assert learned == {"max_output_tokens": 8192}

    # Streamed, as Claude Code asks: clamped from the start now, one upstream request.
    with claude(world).messages.stream(
        model="my-gpt", max_tokens=128000, messages=[{"role": "user", "content": "again"}]
    ) as stream:
        assert stream.get_final_message().content[0].text == "second call"
    assert asked(world) == [128000, 8192, 8192]


def test_a_streamed_request_is_clamped_before_the_first_byte(world):
    world.fake.max_output_tokens = 8192
    world.fake.enqueue(Reply(text="streamed"))
    with claude(world).messages.stream(
        model="my-gpt", max_tokens=128000, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_message().content[0].text == "streamed"
    assert asked(world) == [128000, 8192]


def test_a_passthrough_request_gets_the_upstreams_own_answer(world):
    """An OpenAI client to an OpenAI upstream reads the upstream's words itself: relayed as they are."""
    world.fake.max_output_tokens = 8192
    r = httpx.post(
        world.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {world.key}"},
        json={"model": "my-gpt", "max_tokens": 128000, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 400 and "valid range of max_tokens is [1, 8192]" in r.json()["error"]["message"]
    assert asked(world) == [128000]


def test_a_limit_that_still_fails_is_not_retried_again(world):
    world.fake.max_output_tokens = 8192
    world.fake.enqueue(Reply(status=400, text="max_tokens must be less than or equal to 4096"))
    try:
        claude(world).messages.create(model="my-gpt", max_tokens=128000, messages=[{"role": "user", "content": "x"}])
    except anthropic.BadRequestError as exc:
        assert "4096" in str(exc)
    else:
        raise AssertionError("the second refusal must reach the client")
    assert asked(world) == [128000, 8192]


def test_a_passed_through_request_is_clamped_to_the_models_known_limit(stack, world):
    """Same dialect both sides: the model's known limit (its max_output_tokens) clamps max_tokens before the
    upstream can refuse it; a thinking budget that would not fit leaves the request as it is."""
    seed = stack.seed
    up_o = seed.upstream(world.tenant, base_url=world.fake.url + "/v1", dialect="openai", name="lim-o")
    up_a = seed.upstream(world.tenant, base_url=world.fake.url, dialect="anthropic", name="lim-a")
    seed.model(world.tenant, up_o, "gpt-8k", upstream_model="g", max_output_tokens=8192)
    seed.model(world.tenant, up_a, "claude-32k", upstream_model="c", max_output_tokens=32000)
    world.fake.enqueue(Reply(text="a"), Reply(text="b"), Reply(text="c"))
    r = httpx.post(
        world.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {world.key}"},
        json={"model": "gpt-8k", "max_completion_tokens": 128000, "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["relay-conversion-notes"] == "max_tokens_clamped"
    assert world.fake.requests[-1].json["max_completion_tokens"] == 8192
    claude(world).messages.create(model="claude-32k", max_tokens=128000, messages=[{"role": "user", "content": "x"}])
    assert world.fake.requests[-1].json["max_tokens"] == 32000
    thinking = {"type": "enabled", "budget_tokens": 40000}
    claude(world).messages.create(
        model="claude-32k", max_tokens=128000, thinking=thinking, messages=[{"role": "user", "content": "x"}]
    )
    assert world.fake.requests[-1].json["max_tokens"] == 128000  # the upstream says what to do instead
