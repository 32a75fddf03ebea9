"""``/v1/embeddings`` and legacy ``/v1/completions`` through the openai SDK (issue 14): passed through to
OpenAI-dialect upstreams with the model renamed and metered; refused in OpenAI's shape elsewhere."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from gateway.testing.fake_upstream import Reply


def client(world: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)


def test_embeddings_are_relayed_renamed_and_metered(stack, world):
    world.fake.enqueue(Reply(usage=(7, 0)))
    result = client(world).embeddings.create(model="my-gpt", input=["first text", "second text"])  # base64 wire
    assert [len(d.embedding) for d in result.data] == [8, 8] and result.model == "my-gpt"
    assert all(isinstance(x, float) for x in result.data[0].embedding)
    sent = world.fake.requests[-1]
    assert sent.path == "/v1/embeddings" and sent.json["model"] == "gpt-upstream-id"
    assert sent.json["input"] == ["first text", "second text"]
    (row,) = stack.seed.usage_rows(world.tenant, expect=1)
    # my-gpt costs $1 per million input tokens: 7 tokens are 7 micro-USD.
    assert (row.status, row.input_tokens, row.output_tokens, row.cost_micro_usd) == (200, 7, 0, 7)


def test_legacy_completions_json_and_stream(stack, world):
    world.fake.enqueue(Reply(text="Once upon a time", usage=(4, 5)), Reply(text="streamed words", usage=(3, 2)))
    api = client(world)
    done = api.completions.create(model="my-gpt", prompt="Tell a story", max_tokens=20)
    assert done.choices[0].text == "Once upon a time" and done.model == "my-gpt"
    assert world.fake.requests[-1].path == "/v1/completions"
    pieces = [c.choices[0].text for c in api.completions.create(model="my-gpt", prompt="Go", stream=True) if c.choices]
    assert "".join(pieces) == "streamed words"
    rows = stack.seed.usage_rows(world.tenant, expect=2)
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(4, 5), (3, 2)]


@pytest.mark.parametrize("endpoint", ["embeddings", "completions"])
def test_an_anthropic_upstream_is_refused_in_openai_shape(world, endpoint):
    api = client(world)
    with pytest.raises(openai.BadRequestError) as err:
        if endpoint == "embeddings":
            api.embeddings.create(model="my-claude", input="x")
        else:
            api.completions.create(model="my-claude", prompt="x")
    assert err.value.body["param"] == "model" and "Anthropic-dialect upstream" in err.value.body["message"]
    assert world.fake.requests == []


@pytest.mark.parametrize("bad", [None, 5, [], [1, "a"], {"text": "x"}, [[1, 2], "b"]])
def test_bad_input_is_a_400_naming_it(world, bad):
    body: dict[str, Any] = {"model": "my-gpt"}
    if bad is not None:
        body["input"] = bad
    with pytest.raises(openai.BadRequestError) as err:
        client(world).post("/embeddings", body=body, cast_to=dict)
    assert err.value.body["param"] == "input"
    assert world.fake.requests == []
