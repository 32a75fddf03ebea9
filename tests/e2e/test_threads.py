"""Anthropic message threads through Relay, driven by the anthropic SDK (2.x), on both backends.

The SDK's ``beta.messages.tool_runner`` threads by default: its second turn carries only the tool
results. Relay holds the thread for an upstream without threads (both fakes) and must send the
whole conversation upstream; to an upstream that holds threads itself it forwards ``thread``
untouched and leaves the continued turn's tool results alone.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import beta_tool

from gateway.testing.fake_upstream import Reply, ToolCall

UPSTREAMS = pytest.mark.parametrize("model", ["my-gpt", "my-claude"])
BETA = "message-threads-2026-08-12"


def client(world: Any, sent: list[dict[str, Any]] | None = None) -> anthropic.Anthropic:
    def record(request: httpx2.Request) -> None:
        if sent is not None and request.url.path.endswith("/messages"):
            sent.append(json.loads(request.content))

    http = httpx2.Client(event_hooks={"request": [record]})
    return anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0, http_client=http)


@beta_tool
def get_weather(city: str) -> str:
    """Current weather of a city.

    Args:
        city: the city
    """
    return f"sunny in {city}"


def _texts(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"])


@UPSTREAMS
def test_tool_runner_threads_through_relay(world, model):
    world.fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Lima"}, id="toolu_lima1")]))
    world.fake.enqueue(Reply(text="It is sunny in Lima."))
    sent: list[dict[str, Any]] = []
    runner = client(world, sent).beta.messages.tool_runner(
        model=model,
        max_tokens=256,
        system="You are terse.",
        tools=[get_weather],
        messages=[{"role": "user", "content": "Weather in Lima?"}],
    )
    final = runner.until_done()
    assert final.content[-1].text == "It is sunny in Lima."
    # The SDK threaded: create first, then a continue with only the tool result and no system/tools.
    assert sent[0]["thread"] == {"type": "create"}
    assert sent[1]["thread"]["type"] == "continue" and "system" not in sent[1] and "tools" not in sent[1]
    assert len(sent[1]["messages"]) == 1
    # The upstream got the whole conversation, system prompt and tools included, and no thread.
    upstream = world.fake.requests[-1].json
    assert "thread" not in upstream
    assert "Weather in Lima?" in _texts(upstream) and "sunny in Lima" in _texts(upstream)
    assert "You are terse." in json.dumps(upstream)
    assert "get_weather" in json.dumps(upstream["tools"])


@UPSTREAMS
def test_streamed_thread_turns(world, model):
    api = client(world)
    world.fake.enqueue(Reply(text="First answer."))
    with api.beta.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "one"}],
        thread={"type": "create"},
        betas=[BETA],
    ) as stream:
        first = stream.get_final_message()
    world.fake.enqueue(Reply(text="Second answer."))
    second = api.beta.messages.create(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "two"}],
        thread={"type": "continue", "previous_message_id": first.id},
        betas=[BETA],
    )
    assert second.content[0].text == "Second answer."
    upstream = _texts(world.fake.requests[-1].json)
    assert "one" in upstream and "First answer." in upstream and "two" in upstream


def test_thread_errors_carry_the_sdk_error_codes(world):
    api = client(world)
    world.fake.enqueue(Reply(text="a"))
    first = api.beta.messages.create(
        model="my-claude",
        max_tokens=32,
        messages=[{"role": "user", "content": "hi"}],
        thread={"type": "create"},
        betas=[BETA],
    )
    cont = {"type": "continue", "previous_message_id": first.id}
    world.fake.enqueue(Reply(text="b"))
    api.beta.messages.create(
        model="my-claude", max_tokens=32, messages=[{"role": "user", "content": "x"}], thread=cont, betas=[BETA]
    )
    with pytest.raises(anthropic.BadRequestError) as already:
        api.beta.messages.create(
            model="my-claude", max_tokens=32, messages=[{"role": "user", "content": "y"}], thread=cont, betas=[BETA]
        )
    assert already.value.error_code == "thread_already_continued"
    unknown = {"type": "continue", "previous_message_id": "msg_unknown"}
    with pytest.raises(anthropic.NotFoundError) as missing:
        api.beta.messages.create(
            model="my-claude", max_tokens=32, messages=[{"role": "user", "content": "y"}], thread=unknown, betas=[BETA]
        )
    assert missing.value.error_code == "thread_not_found"
    with pytest.raises(anthropic.BadRequestError) as unsupported:
        api.beta.messages.create(
            model="my-claude",
            max_tokens=32,
            messages=[{"role": "user", "content": "y"}],
            thread={"type": "create"},
            context_management={"edits": []},
            betas=[BETA],
        )
    assert unsupported.value.error_code == "thread_unsupported_request"
    assert unsupported.value.body["error"]["details"]["unsupported"] == ["context_management"]


def test_unanswered_tool_use_is_refused_not_repaired(world):
    api = client(world)
    world.fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="toolu_o1")]))
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    first = api.beta.messages.create(
        model="my-gpt",
        max_tokens=32,
        tools=tools,
        messages=[{"role": "user", "content": "w?"}],
        thread={"type": "create"},
        betas=[BETA],
    )
    with pytest.raises(anthropic.BadRequestError) as err:
        api.beta.messages.create(
            model="my-gpt",
            max_tokens=32,
            messages=[{"role": "user", "content": "never mind"}],
            thread={"type": "continue", "previous_message_id": first.id},
            betas=[BETA],
        )
    assert "toolu_o1" in str(err.value)
    # The refused continue let the turn go: a proper continue still works.
    world.fake.enqueue(Reply(text="ok"))
    result = [{"type": "tool_result", "tool_use_id": "toolu_o1", "content": "cold"}]
    api.beta.messages.create(
        model="my-gpt",
        max_tokens=32,
        messages=[{"role": "user", "content": result}],
        thread={"type": "continue", "previous_message_id": first.id},
        betas=[BETA],
    )
    assert world.fake.requests[-1].json["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "toolu_o1",
        "content": "cold",
    }


def test_native_thread_upstream_gets_thread_untouched(stack, world):
    up = stack.seed.upstream(
        world.tenant, base_url=world.fake.url, dialect="anthropic", profile={"supports_threads": True}
    )
    stack.seed.model(world.tenant, up, "threaded-claude", upstream_model="claude-native")
    world.fake.enqueue(Reply(text="done"))
    result = [{"type": "tool_result", "tool_use_id": "toolu_held1", "content": "42"}]
    client(world).beta.messages.create(
        model="threaded-claude",
        max_tokens=32,
        messages=[{"role": "user", "content": result}],
        thread={"type": "continue", "previous_message_id": "msg_upstream_held"},
        betas=[BETA],
    )
    request = world.fake.requests[-1]
    assert request.json["thread"] == {"type": "continue", "previous_message_id": "msg_upstream_held"}
    assert request.json["messages"] == [{"role": "user", "content": result}]  # no orphan "repair"
    assert BETA in request.headers["anthropic-beta"]


def test_a_continue_refused_by_a_limit_lets_the_turn_go(stack, world):
    """A 429 before the upstream is called must not leave the held turn claimed ("in flight") for good."""
    api = client(world)
    stack.seed.limits(world.key_id, rpm=1)
    time.sleep(stack.settings.key_cache_ttl_s + 0.5)
    world.fake.enqueue(Reply(text="first"))
    first = api.beta.messages.create(
        model="my-gpt",
        max_tokens=32,
        messages=[{"role": "user", "content": "a"}],
        thread={"type": "create"},
        betas=[BETA],
    )
    cont = {"type": "continue", "previous_message_id": first.id}
    with pytest.raises(anthropic.RateLimitError):
        api.beta.messages.create(
            model="my-gpt", max_tokens=32, messages=[{"role": "user", "content": "b"}], thread=cont, betas=[BETA]
        )
    stack.seed.limits(world.key_id, rpm=None)
    world.fake.set_default(Reply(text="second"))
    deadline = time.monotonic() + stack.settings.key_cache_ttl_s + 5
    while True:  # until every worker's key cache has dropped the limit; each refusal lets the turn go again
        try:
            second = api.beta.messages.create(
                model="my-gpt", max_tokens=32, messages=[{"role": "user", "content": "b"}], thread=cont, betas=[BETA]
            )
            break
        except anthropic.RateLimitError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert second.content[0].text == "second"
