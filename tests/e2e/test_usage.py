"""Usage metering end to end, on both backends: 200 concurrent requests through the real gateway, then
the ledger, the daily rollup, the Redis counters (Postgres backend), `relay usage --json` and the
usage API all agree with the exact sums of what the upstream reported."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import redis
import sqlalchemy as sa
from support import REDIS_URL
from test_cli import ok, relay
from test_management_api import Api, make_token
from test_management_api import ok as ok_json

from gateway.db.tables import ApiKey, UsageDaily
from gateway.domain import Price, Usage
from gateway.testing.fake_upstream import Reply

IN, OUT, CACHE_READ, CACHE_WRITE = 120, 45, 30, 7
N_EACH = 50  # x 4 kinds of call = 200 requests
# The Anthropic upstream reports all four kinds as they are; the OpenAI one folds cache writes into its
# prompt_tokens (see gateway.testing.fake_replies), so they come back as uncached input.
CLAUDE = Usage(input_tokens=IN, output_tokens=OUT, cache_read_tokens=CACHE_READ, cache_write_tokens=CACHE_WRITE)
GPT = Usage(input_tokens=IN + CACHE_WRITE, output_tokens=OUT, cache_read_tokens=CACHE_READ)
# The world's models give no cache prices: a cached token is then billed at the input price (``add_model``).
PRICES = {"my-claude": Price(3.0, 15.0, 3.0, 3.0), "my-gpt": Price(1.0, 2.0, 1.0, 1.0)}
FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def expected() -> dict[str, int]:
    out: Counter[str] = Counter()
    for usage, model in ((CLAUDE, "my-claude"), (GPT, "my-gpt")):
        n = 2 * N_EACH
        out["requests"] += n
        for f in FIELDS:
            out[f] += n * getattr(usage, f)
        out["cost_micro_usd"] += n * PRICES[model].cost_micro_usd(usage)
    return dict(out)


async def fire_all(world: Any) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=4 * N_EACH + 10, max_keepalive_connections=4 * N_EACH + 10)
    headers = {"authorization": f"Bearer {world.key}", "x-api-key": world.key}
    messages = [{"role": "user", "content": "hi"}]
    calls = []
    async with httpx.AsyncClient(base_url=world.url, headers=headers, timeout=60, limits=limits) as client:
        for stream in (False, True):
            anthropic = {"model": "my-claude", "max_tokens": 100, "messages": messages, "stream": stream}
            openai = {"model": "my-gpt", "messages": messages, "stream": stream}
            calls += [client.post("/v1/messages", json=anthropic) for _ in range(N_EACH)]
            calls += [client.post("/v1/chat/completions", json=openai) for _ in range(N_EACH)]
        return list(await asyncio.gather(*calls))


def wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


async def _scalars(session: Any, query: Any) -> list[Any]:
    return list(await session.scalars(query))


def test_200_concurrent_requests_sum_exactly_everywhere(stack, world):
    world.fake.set_default(
        Reply(text="counted", usage=(IN, OUT), cache_read_tokens=CACHE_READ, cache_write_tokens=CACHE_WRITE)
    )
    replies = asyncio.run(fire_all(world))
    assert [r.status_code for r in replies] == [200] * (4 * N_EACH), [r.text for r in replies if r.status_code != 200]
    want = expected()

    # The ledger: one row per request, the exact sums.
    rows = stack.seed.usage_rows(world.tenant, expect=4 * N_EACH)
    assert len(rows) == 4 * N_EACH and all(r.status == 200 for r in rows)
    ledger = {f: sum(getattr(r, f) for r in rows) for f in (*FIELDS, "cost_micro_usd")}
    assert ledger == {k: v for k, v in want.items() if k != "requests"}

    # The rollup: the same sums, written in the ledger's own transactions.
    daily = stack.seed.run(lambda s: _scalars(s, sa.select(UsageDaily).where(UsageDaily.tenant_id == world.tenant.id)))
    assert {d.model for d in daily} == {"my-claude", "my-gpt"} and {d.key_id for d in daily} == {world.key_id}
    rollup = {f: sum(getattr(d, f) for d in daily) for f in ("requests", *FIELDS, "cost_micro_usd")}
    assert rollup == want and sum(d.errors for d in daily) == 0

    # Redis (production backend): the per-key day hashes.
    if stack.name == "postgres":
        client = redis.Redis.from_url(REDIS_URL)
        days = sorted({r.created_at.strftime("%Y%m%d") for r in rows})

        def counters() -> dict[str, int]:
            total: Counter[str] = Counter()
            for day in days:
                for k, v in client.hgetall(f"relay:usage:key:{world.key_id}:{day}").items():
                    total[k.decode()] += int(v)
            return dict(total) if total["requests"] == 4 * N_EACH else {}

        assert wait_for(counters) == want
        client.close()

    # The CLI: one JSON document, totals under the ledger's field names.
    doc = json.loads(ok(relay(stack, "usage", "--tenant", world.tenant.name, "--json", "--by", "model")))
    assert {k: doc["totals"][k] for k in want} == want
    assert doc["totals"]["cost_usd"] == want["cost_micro_usd"] / 1e6
    assert {r["model"]: r["requests"] for r in doc["rows"]} == {"my-claude": 2 * N_EACH, "my-gpt": 2 * N_EACH}
    by_key = json.loads(ok(relay(stack, "usage", "--tenant", world.tenant.name, "--json", "--by", "key")))
    assert [(r["key_id"], r["requests"]) for r in by_key["rows"]] == [(world.key_id, 4 * N_EACH)]
    one_model = json.loads(
        ok(relay(stack, "usage", "--tenant", world.tenant.name, "--model", "my-gpt", "--key", world.key[:10], "--json"))
    )
    assert one_model["totals"]["requests"] == 2 * N_EACH
    assert one_model["totals"]["input_tokens"] == 2 * N_EACH * (IN + CACHE_WRITE)
    table = ok(relay(stack, "usage", "--tenant", world.tenant.name, "--by", "model"))
    assert "my-claude" in table and "TOTAL" in table and f"{want['requests']:,}" in table

    # The API agrees.
    api = Api(stack, make_token(stack, world.tenant, "member"))
    body = ok_json(api.get("/usage", params={"group_by": "model"}))
    assert {k: body["totals"][k] for k in want} == want
    api.close()


def test_last_used_at_is_stamped_off_the_hot_path(stack, world):
    async def last_used(session: Any) -> Any:
        return await session.scalar(sa.select(ApiKey.last_used_at).where(ApiKey.id == world.key_id))

    assert stack.seed.run(last_used) is None
    before = datetime.now(UTC)
    world.fake.enqueue(Reply(text="hi"))
    r = httpx.post(
        world.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {world.key}"},
        json={"model": "my-gpt", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    stamped = wait_for(lambda: stack.seed.run(last_used))
    assert stamped is not None and before <= stamped <= datetime.now(UTC)
    api = Api(stack, make_token(stack, world.tenant, "member"))
    assert ok_json(api.get(f"/keys/{world.key_id}"))["last_used_at"] is not None
    api.close()


def test_cli_usage_errors_are_one_clear_line(stack, world):
    bad = relay(stack, "usage", "--tenant", world.tenant.name, "--since", "last tuesday")
    assert bad.returncode == 1 and "--since" in bad.stderr
    missing = relay(stack, "usage", "--tenant", world.tenant.name, "--key", "sk-NoSuchKey")
    assert missing.returncode == 1 and "not found" in missing.stderr
    backwards = relay(stack, "usage", "--tenant", world.tenant.name, "--since", "2026-02-01", "--until", "2026-01-01")
    assert backwards.returncode == 1 and "until" in backwards.stderr
