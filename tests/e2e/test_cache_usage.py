"""Cached-token usage end to end (issue 15, item 3), on both backends, through the running gateway.

The issue's proof: 1000 prompt tokens of which 800 were cached reach the Anthropic door as
``input_tokens=200, cache_read_input_tokens=800`` whatever the provider called them (OpenAI, DeepSeek,
Kimi), JSON and stream; the OpenAI door shows an Anthropic upstream's ``input_tokens=200 +
cache_read_input_tokens=800`` as ``prompt_tokens=1000`` with ``cached_tokens=800``. The ledger row
prices the 800 at the cache-read price, and the dashboard, the usage API and ``relay usage`` show the
hit rate (80%) and what caching saved (800 x (2.00 - 0.20) = 1440 micro-USD).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from test_admin_auth import signed_in
from test_cli import ok, relay
from test_management_api import Api, make_token
from test_management_api import ok as ok_json

from gateway.testing.fake_upstream import Reply

PRICES = {"input_price": 2.0, "cache_read_price": 0.2, "cache_write_price": 2.5, "output_price": 8.0}
COST = round(2.0 * 200 + 0.2 * 800 + 8.0 * 20)
"""720 micro-USD; pricing the cached 800 as input would give 2160."""
SAVED = round(800 * (2.0 - 0.2))

OPENAI = {"prompt_tokens": 1000, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 800}}
DEEPSEEK = {
    "prompt_tokens": 1000,
    "completion_tokens": 20,
    "prompt_cache_hit_tokens": 800,
    "prompt_cache_miss_tokens": 200,
}
KIMI = {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020, "cached_tokens": 800}
SHAPES = {"openai": OPENAI, "deepseek": DEEPSEEK, "kimi": KIMI}


@dataclass
class Setup:
    tenant: Any
    key: str
    url: str


@pytest.fixture
def setup(stack: Any, fake: Any) -> Setup:
    """A tenant whose key reaches one model per dialect on the fake, both with distinct cache prices."""
    seed = stack.seed
    tenant = seed.tenant()
    up_o = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai", api_key="up-o")
    up_a = seed.upstream(tenant, base_url=fake.url, dialect="anthropic", api_key="up-a")
    seed.model(tenant, up_o, "cached-gpt", upstream_model="gpt-up", **PRICES)
    seed.model(tenant, up_a, "cached-claude", upstream_model="claude-up", **PRICES)
    return Setup(tenant, seed.key(tenant, name="cache key").secret, stack.url)


def _completion(usage: dict[str, Any]) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    doc = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-up", "choices": [choice]}
    return json.dumps({**doc, "usage": usage}).encode()


def _chunks(usage: dict[str, Any], *, in_choice: bool) -> bytes:
    """An OpenAI stream; Kimi reports a stream's usage inside its finishing choice, others in a last chunk."""
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up"}
    finish: dict[str, Any] = {"index": 0, "delta": {}, "finish_reason": "stop"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]},
        {**base, "choices": [{**finish, "usage": usage}]} if in_choice else {**base, "choices": [finish]},
    ]
    if not in_choice:
        chunks.append({**base, "choices": [], "usage": usage})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def _ledger(stack: Any, tenant: Any) -> Any:
    rows = stack.seed.usage_rows(tenant, expect=1)
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPES.keys())
def test_anthropic_door_reports_cached_usage_of_every_openai_style_provider(stack, fake, setup, shape, stream):
    usage = SHAPES[shape]
    if stream:
        fake.enqueue(Reply(body=_chunks(usage, in_choice=shape == "kimi"), content_type="text/event-stream"))
    else:
        fake.enqueue(Reply(body=_completion(usage)))
    body = {"model": "cached-gpt", "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(setup.url + "/v1/messages", headers={"x-api-key": setup.key}, json=body, timeout=30)
    assert r.status_code == 200, r.text
    got = [e["usage"] for e in _sse(r.text) if e["type"] == "message_delta"][-1] if stream else r.json()["usage"]
    assert (got["input_tokens"], got["cache_read_input_tokens"], got["output_tokens"]) == (200, 800, 20)

    row = _ledger(stack, setup.tenant)
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens) == (200, 800, 0, 20)
    assert row.cost_micro_usd == COST


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_door_counts_an_anthropic_upstreams_cache_reads_inside_prompt_tokens(stack, fake, setup, stream):
    fake.enqueue(Reply(text="hi", usage=(200, 20), cache_read_tokens=800))
    body: dict[str, Any] = {"model": "cached-claude", "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    if stream:
        body["stream_options"] = {"include_usage": True}
    r = httpx.post(setup.url + "/v1/chat/completions", headers={"authorization": f"Bearer {setup.key}"}, json=body)
    assert r.status_code == 200, r.text
    usage = [c["usage"] for c in _sse(r.text) if c.get("usage")][-1] if stream else r.json()["usage"]
    assert usage["prompt_tokens"] == 1000 and usage["prompt_tokens_details"]["cached_tokens"] == 800
    assert usage["completion_tokens"] == 20 and usage["total_tokens"] == 1020

    row = _ledger(stack, setup.tenant)
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens, row.cost_micro_usd) == (200, 800, 20, COST)


def test_dashboard_api_and_cli_show_the_hit_rate_and_what_caching_saved(stack, fake, setup):
    fake.enqueue(Reply(body=_completion(DEEPSEEK)))
    body = {"model": "cached-gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(setup.url + "/v1/messages", headers={"x-api-key": setup.key}, json=body).status_code == 200
    _ledger(stack, setup.tenant)

    owner = signed_in(stack, setup.tenant)
    for range_ in ("24h", "7d"):
        page = owner.get("/dashboard", params={"range": range_}).text
        assert "80.0% hit rate" in page.split('id="cache-hit-rate"')[1].split("</div>")[0], range_
        assert "caching saved $0.00144" in page.split('id="cache-saved"')[1].split("</div>")[0], range_
        models = page.split("<h2>Models</h2>")[1].split("</table>")[0]
        keys = page.split("<h2>Keys</h2>")[1].split("</table>")[0]
        for table, label in ((models, "cached-gpt"), (keys, "cache key")):
            row = next(tr for tr in table.split("<tr>") if label in tr)
            assert "80.0%" in row and "$0.00144" in row, (range_, label, row)

    api = Api(stack, make_token(stack, setup.tenant, "member"))
    for group in ("model", "key", "day"):
        doc = ok_json(api.get("/usage", params={"group_by": group}))
        for figures in (doc["totals"], doc["rows"][0]):
            assert figures["cache_hit_rate"] == 0.8 and figures["cache_saved_micro_usd"] == SAVED, (group, figures)
        assert doc["totals"]["cache_saved_usd"] == SAVED / 1e6 and doc["cache_unpriced_models"] == []
    api.close()

    doc = json.loads(ok(relay(stack, "usage", "--tenant", setup.tenant.name, "--by", "model", "--json")))
    assert doc["totals"]["cache_hit_rate"] == 0.8 and doc["rows"][0]["cache_saved_micro_usd"] == SAVED
    table = ok(relay(stack, "usage", "--tenant", setup.tenant.name, "--by", "key"))
    assert "HIT RATE" in table and "80.0%" in table and "0.001440" in table
