"""POST /v1/messages/count_tokens: forwarded to Anthropic upstreams, counted locally for the others."""

from __future__ import annotations

import anthropic
import httpx

from gateway.tokencount import count_anthropic_request, count_text

LONG = "The quick brown fox jumps over the lazy dog. " * 50


def test_forwarded_to_an_anthropic_upstream(world):
    client = anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0)
    result = client.messages.count_tokens(model="my-claude", messages=[{"role": "user", "content": LONG}])
    sent = world.fake.requests[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.json["model"] == "claude-upstream-id"
    assert result.input_tokens > 0


def test_counted_locally_for_an_openai_upstream(world):
    r = httpx.post(
        world.url + "/v1/messages/count_tokens?beta=true",
        headers={"x-api-key": world.key, "anthropic-version": "2023-06-01"},
        json={"model": "my-gpt", "system": "Be brief.", "messages": [{"role": "user", "content": LONG}]},
    )
    assert r.status_code == 200, r.text
    n = r.json()["input_tokens"]
    assert n >= count_text(LONG)  # never an undercount of the text itself
    assert n <= count_text(LONG) * 1.3
    assert world.fake.requests == []  # nothing billable was sent just to count


def test_tools_images_and_tool_results_count():
    base = {"messages": [{"role": "user", "content": "hi"}]}
    with_tools = {
        **base,
        "tools": [{"name": "get_weather", "description": LONG, "input_schema": {"type": "object", "properties": {}}}],
    }
    with_image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "text", "text": "hi"},
                ],
            }
        ]
    }
    with_result = {
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"q": LONG}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": LONG}]},
        ]
    }
    plain = count_anthropic_request(base)
    assert plain > 0
    assert count_anthropic_request(with_tools) > plain + count_text(LONG)
    assert count_anthropic_request(with_image) >= 1600
    assert count_anthropic_request(with_result) >= 2 * count_text(LONG)


def test_missing_messages_is_a_400(world):
    r = httpx.post(world.url + "/v1/messages/count_tokens", headers={"x-api-key": world.key}, json={"model": "my-gpt"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "messages" in r.json()["error"]["message"]


def test_edge_10_and_12_local_count_is_conservative_and_images_are_fixed_cost():
    """§11.10/§11.12: never undercount text; base64 bulk is not counted as text."""
    english = {"messages": [{"role": "user", "content": "word " * 4000}]}
    assert 4000 <= count_anthropic_request(english) <= 5000
    cjk = {"messages": [{"role": "user", "content": "汉字" * 2000}]}
    assert count_anthropic_request(cjk) >= 2000
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 2_000_000}}
    assert 1600 <= count_anthropic_request({"messages": [{"role": "user", "content": [image]}]}) < 1800
