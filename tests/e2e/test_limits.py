"""Rate limits, concurrency and budgets under concurrency, on both backends (Redis Lua and in-process)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gateway.testing.fake_upstream import Reply


def chat(model: str = "my-gpt", max_tokens: int | None = None) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return body


async def fire(
    url: str, key: str, n: int, body: dict, *, concurrency: int = 50, door: str = "openai"
) -> list[httpx.Response]:
    path = "/v1/chat/completions" if door == "openai" else "/v1/messages"
    headers = {"authorization": f"Bearer {key}"}
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:

        async def one() -> httpx.Response:
            async with sem:
                return await client.post(path, json=body)

        return list(await asyncio.gather(*(one() for _ in range(n))))


def test_rpm_is_a_sliding_window_not_a_fixed_one(stack, world):
    stack.seed.limits(world.key_id, rpm=60)
    started = time.monotonic()
    replies = asyncio.run(fire(world.url, world.key, 200, chat(), concurrency=20))
    assert time.monotonic() - started < 60  # all inside one window
    ok = [r for r in replies if r.status_code == 200]
    limited = [r for r in replies if r.status_code == 429]
    assert len(ok) == 60 and len(limited) == 140
    r = limited[0]
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-limit-requests"] == "60" and r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    assert len(world.fake.requests) == 60  # nothing over the limit reached the upstream
    rows = stack.seed.usage_rows(world.tenant, expect=60)
    assert len(rows) == 60


def test_rate_limit_in_the_anthropic_dialect(stack, world):
    stack.seed.limits(world.key_id, rpm=1)
    body = {"model": "my-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    first = httpx.post(world.url + "/v1/messages", headers={"x-api-key": world.key}, json=body)
    second = httpx.post(world.url + "/v1/messages", headers={"x-api-key": world.key}, json=body)
    assert first.status_code == 200 and second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert second.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert 1 <= int(second.headers["retry-after"]) <= 60


def test_concurrency_limit(stack, world):
    stack.seed.limits(world.key_id, concurrency=3)
    world.fake.set_default(Reply(text="slow", delay_s=0.5))
    replies = asyncio.run(fire(world.url, world.key, 10, chat(), concurrency=10))
    assert sum(r.status_code == 200 for r in replies) == 3
    assert sum(r.status_code == 429 for r in replies) == 7
    # Slots are released when calls end: the next request is admitted.
    world.fake.set_default(Reply(text="fast"))
    assert (
        httpx.post(
            world.url + "/v1/chat/completions", headers={"authorization": f"Bearer {world.key}"}, json=chat()
        ).status_code
        == 200
    )


def test_tpm_counts_real_tokens(stack, world):
    stack.seed.limits(world.key_id, tpm=1000)
    world.fake.set_default(Reply(text="x", usage=(400, 400)))
    headers = {"authorization": f"Bearer {world.key}"}
    first = httpx.post(world.url + "/v1/chat/completions", headers=headers, json=chat(max_tokens=50))
    assert first.status_code == 200
    time.sleep(0.3)  # the settle (real count: 800 tokens) happens off the response path
    second = httpx.post(world.url + "/v1/chat/completions", headers=headers, json=chat(max_tokens=300))
    assert second.status_code == 429 and second.headers["x-ratelimit-limit-tokens"] == "1000"


@pytest.mark.parametrize("door", ["openai", "anthropic"])
def test_budget_race_admits_at_most_one_more_than_fits(stack, world, door):
    # Each request really costs 10 input + 100 output tokens at $1/$2 per MTok = 210 micro-USD; its reserved
    # estimate (input counted + max_tokens of output) is a little more. The budget fits exactly 10.
    world.fake.set_default(Reply(text="y", usage=(10, 100), delay_s=0.2))
    stack.seed.limits(world.key_id, budget_usd=10 * 210 / 1e6)
    body = chat(max_tokens=100) if door == "openai" else {**chat("my-gpt"), "max_tokens": 100}
    replies = asyncio.run(fire(world.url, world.key, 50, body, concurrency=50, door=door))
    admitted = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 402]
    assert 1 <= len(admitted) <= 11 and len(admitted) + len(refused) == 50
    assert refused[0].headers["x-should-retry"] == "false"
    err = refused[0].json()["error"]
    assert err["type"] == ("insufficient_quota" if door == "openai" else "billing_error")
    rows = stack.seed.usage_rows(world.tenant, expect=len(admitted))
    assert sum(r.cost_micro_usd for r in rows) <= 10 * 210 + 210
    # Once settled, later requests are refused too: the budget is spent, not merely reserved.
    time.sleep(0.3)
    later = asyncio.run(fire(world.url, world.key, 5, body, door=door))
    spent = sum(r.cost_micro_usd for r in stack.seed.usage_rows(world.tenant, expect=len(admitted)))
    assert all(r.status_code == 402 for r in later) or spent + 210 <= 10 * 210


def test_tenant_budget_covers_all_its_keys(stack, world):
    world.fake.set_default(Reply(text="z", usage=(10, 100)))
    stack.seed.tenant_budget(world.tenant, 3 * 210 / 1e6)
    other = stack.seed.key(world.tenant).secret
    codes = []
    for key in (world.key, other, world.key, other, world.key):
        r = httpx.post(
            world.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=chat(max_tokens=100)
        )
        codes.append(r.status_code)
        time.sleep(0.1)
    assert codes.count(200) <= 3 and codes[-1] == 402


def test_limits_update_from_the_cli(stack, world):
    from test_cli import ok, relay

    out = ok(relay(stack, "keys", "update", world.key_id, "--rpm", "2", "--budget", "5", "--budget-period", "month"))
    assert "rpm 2" in out and "$5 (month)" in out
    headers = {"authorization": f"Bearer {world.key}"}
    codes = [httpx.post(world.url + "/v1/chat/completions", headers=headers, json=chat()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    ok(relay(stack, "keys", "update", world.key_id, "--rpm", "0"))
    bad = relay(stack, "keys", "update", world.key_id, "--rpm", "-3")
    assert bad.returncode == 1 and "rpm" in bad.stderr
