"""Anthropic message batches through Relay with the anthropic SDK (issue 14): passed through to an
Anthropic-dialect upstream with models mapped, seen only by the key that made them, results renamed and
metered once; refused in Anthropic's shape for other upstreams."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from gateway.conversation_upkeep import held_conversations

Request = dict[str, Any]


def client(world: Any, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.url, api_key=key or world.key, max_retries=0)


def request(custom_id: str, model: str = "my-claude", **params: Any) -> Request:
    base = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": custom_id}]}
    return {"custom_id": custom_id, "params": {**base, **params}}


def test_create_retrieve_results_and_metering_once(stack, world):
    api = client(world)
    batch = api.messages.batches.create(requests=[request("a"), request("b"), request("c", fail=True)])
    upstream = world.fake.batches.batches[batch.id]
    sent = [r.json for r in world.fake.requests if r.path == "/v1/messages/batches"][-1]
    assert {r["params"]["model"] for r in sent["requests"]} == {"claude-upstream-id"}
    assert upstream["request_counts"]["succeeded"] == 2
    assert batch.results_url == f"{world.url}/v1/messages/batches/{batch.id}/results"

    got = api.messages.batches.retrieve(batch.id)
    assert got.id == batch.id and got.processing_status == "ended"
    results = {r.custom_id: r.result for r in api.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded" and results["a"].message.model == "my-claude"
    assert results["a"].message.content[0].text == "answer to a"
    assert results["c"].type == "errored"
    list(api.messages.batches.results(batch.id))  # read again: metered once
    rows = stack.seed.usage_rows(world.tenant, expect=2)
    # my-claude: $3 in, $15 out per million; 10 in + 5 out = 105 micro-USD, half price for a batch.
    assert sorted((r.model, r.input_tokens, r.output_tokens, r.cost_micro_usd) for r in rows) == [
        ("my-claude", 10, 5, 52),
        ("my-claude", 10, 5, 52),
    ]
    assert [b.id for b in api.messages.batches.list()] == [batch.id]
    assert api.messages.batches.cancel(batch.id).cancel_initiated_at is not None
    api.messages.batches.delete(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        api.messages.batches.retrieve(batch.id)


def test_another_key_sees_nothing(stack, world):
    batch = client(world).messages.batches.create(requests=[request("a")])
    # Kept beside held conversations, but not counted as one.
    assert stack.seed.run(lambda s: held_conversations(s, world.tenant.id)) == (0, 0)
    other = stack.seed.key(world.tenant).secret
    with pytest.raises(anthropic.NotFoundError):
        client(world, other).messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        list(client(world, other).messages.batches.results(batch.id))
    assert list(client(world, other).messages.batches.list()) == []


def test_an_openai_upstream_or_a_bad_batch_is_a_400_in_anthropic_shape(world):
    api = client(world)
    with pytest.raises(anthropic.BadRequestError) as err:
        api.messages.batches.create(requests=[request("a", model="my-gpt")])
    assert "Anthropic-dialect upstreams only" in err.value.message and err.value.body["type"] == "error"
    with pytest.raises(anthropic.BadRequestError):
        api.messages.batches.create(requests=[])
    with pytest.raises(anthropic.NotFoundError):
        api.messages.batches.create(requests=[request("a", model="no-such-model")])
    assert [r for r in world.fake.requests if "batches" in r.path] == []
