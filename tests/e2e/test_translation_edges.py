"""Cross-dialect edge cases through the official SDKs (conversion.md §2, §3, §6, §8.3, §11), on both backends.

Companion of ``test_translation_sdk.py``: structured outputs via the SDKs' ``parse`` helpers,
thinking carried across turns and across a model switch, long tool names, foreign tool ids,
images returned by tools, and the history repairs the converters promise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import anthropic
import openai
import pydantic
import pytest

from gateway.convert.ids import shorten_tool_name
from gateway.testing.fake_upstream import Reply, ToolCall

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
LONG_NAME = "mcp__claude_in_chrome__" + "navigate_to_the_page_and_take_a_full_screenshot_of_it"
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


class Weather(pydantic.BaseModel):
    city: str
    temp: int


def anthropic_client(world: Any, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0, **kw)


def openai_client(world: Any, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0, **kw)


def sent(world: Any) -> dict[str, Any]:
    body: dict[str, Any] = world.fake.requests[-1].json
    return body


def fake_signature(thinking: str) -> str:
    """The signature the fake Anthropic upstream puts on a thinking block (a stand-in for a genuine one)."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def claude_msg(world: Any, stream: bool, **kw: Any) -> Any:
    client = anthropic_client(world)
    kw.setdefault("model", "my-gpt")
    kw.setdefault("max_tokens", 100)
    if not stream:
        return client.messages.create(**kw)
    with client.messages.stream(**kw) as s:
        return s.get_final_message()


def openai_completion(world: Any, stream: bool, **kw: Any) -> Any:
    client = openai_client(world)
    kw.setdefault("model", "my-claude")
    if not stream:
        return client.chat.completions.create(**kw)
    with client.chat.completions.stream(**kw) as s:
        return s.get_final_completion()


# ---------------------------------------------------------------- structured outputs through the SDK helpers


@STREAMS
def test_openai_parse_helper_against_an_anthropic_upstream(world, stream):
    """``response_format`` json_schema → a forced ``json_output`` tool upstream → JSON text the SDK parses."""
    world.fake.enqueue(Reply(tool_calls=[ToolCall("json_output", {"city": "Paris", "temp": 21})], chunks=3))
    messages = [{"role": "user", "content": "Weather in Paris as JSON"}]
    client = openai_client(world)
    if stream:
        with client.chat.completions.stream(model="my-claude", messages=messages, response_format=Weather) as s:
            final = s.get_final_completion()
    else:
        final = client.chat.completions.parse(model="my-claude", messages=messages, response_format=Weather)
    message = final.choices[0].message
    assert message.parsed == Weather(city="Paris", temp=21)
    assert not message.tool_calls
    assert final.choices[0].finish_reason == "stop"
    body = sent(world)
    assert body["tool_choice"] == {"type": "tool", "name": "json_output"}
    assert [t["name"] for t in body["tools"]] == ["json_output"]
    assert set(body["tools"][0]["input_schema"]["properties"]) == {"city", "temp"}


@STREAMS
def test_anthropic_parse_helper_against_an_openai_upstream(world, stream):
    """``output_config.format`` → a forced ``json_output`` function (this profile has no structured outputs),
    whose arguments come back as the text the parse helper reads."""
    world.fake.enqueue(Reply(tool_calls=[ToolCall("json_output", {"city": "Paris", "temp": 21})], chunks=3))
    client = anthropic_client(world)
    kw: dict[str, Any] = {
        "model": "my-gpt",
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Weather in Paris as JSON"}],
        "output_format": Weather,
    }
    if stream:
        with client.messages.stream(**kw) as s:
            final = s.get_final_message()
    else:
        final = client.messages.parse(**kw)
    assert final.parsed_output == Weather(city="Paris", temp=21)
    body = sent(world)
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "json_output"}}
    assert set(body["tools"][0]["function"]["parameters"]["properties"]) == {"city", "temp"}
    assert "response_format" not in body


# ---------------------------------------------------------------- thinking across turns


def test_openai_client_echoing_thinking_blocks_keeps_anthropic_thinking_on(world):
    """§8.3: the signed thinking block rides in ``thinking_blocks``; sent back, it is restored and thinking stays on."""
    call = ToolCall("lookup", {"q": "x"}, id="toolu_look1")
    world.fake.enqueue(Reply(reasoning="I should look it up", tool_calls=[call]), Reply(text="found it"))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}]
    client = openai_client(world)
    question = {"role": "user", "content": "find x"}
    first = client.chat.completions.create(model="my-claude", messages=[question], tools=tools, reasoning_effort="low")
    message = first.choices[0].message
    carried = (message.model_extra or {}).get("thinking_blocks")
    assert carried and carried[0]["signature"] == fake_signature("I should look it up")

    history = [question, message, {"role": "tool", "tool_call_id": "toolu_look1", "content": "x=1"}]
    second = client.chat.completions.create(model="my-claude", messages=history, tools=tools, reasoning_effort="low")
    assert second.choices[0].message.content == "found it"
    body = sent(world)
    assert body["thinking"]["type"] == "enabled"
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "I should look it up",
        "signature": fake_signature("I should look it up"),
    }
    assert assistant["content"][1]["type"] == "tool_use"


def test_openai_client_dropping_reasoning_turns_thinking_off_instead_of_a_400(world):
    """Without the signed block Anthropic would reject thinking on a tool-use turn: thinking is disabled instead."""
    world.fake.enqueue(Reply(text="found it"))
    history = [
        {"role": "user", "content": "find x"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_look1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_look1", "content": "x=1"},
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}]
    raw = openai_client(world).chat.completions.with_raw_response.create(
        model="my-claude", messages=history, tools=tools, reasoning_effort="high"
    )
    assert raw.parse().choices[0].message.content == "found it"
    assert "thinking" not in sent(world)
    assert "thinking_disabled_unsigned_history" in raw.headers["relay-conversion-notes"].split(",")


def test_model_switch_replays_no_relay_made_thinking_to_anthropic(world):
    """Thinking that came from an OpenAI upstream carries a relay-minted signature; Anthropic never sees it (§11.34)."""
    call = ToolCall("lookup", {"q": "x"}, id="call_look1")
    world.fake.enqueue(Reply(reasoning="maybe look", tool_calls=[call]), Reply(text="done"))
    tools = [{"name": "lookup", "input_schema": SCHEMA}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    question = {"role": "user", "content": "find x"}
    first = claude_msg(world, True, max_tokens=2000, thinking=thinking, tools=tools, messages=[question])
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.content[0].signature

    history = [
        question,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_look1", "content": "x=1"}]},
    ]
    final = claude_msg(
        world, True, model="my-claude", max_tokens=2000, thinking=thinking, tools=tools, messages=history
    )
    assert final.content[0].text == "done"
    body = sent(world)
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_look1", "name": "lookup", "input": {"q": "x"}}
    ]
    assert "thinking" not in body  # a tool-use turn without a genuine signed block: thinking must go


# ---------------------------------------------------------------- tool names and ids


@STREAMS
def test_long_tool_name_is_shortened_upstream_and_restored_for_the_anthropic_sdk(world, stream):
    short = shorten_tool_name(LONG_NAME)
    assert short != LONG_NAME and len(short) <= 64
    world.fake.enqueue(Reply(tool_calls=[ToolCall(short, {"q": "x"}, id="call_1")], chunks=4))
    msg = claude_msg(
        world, stream, tools=[{"name": LONG_NAME, "input_schema": SCHEMA}], messages=[{"role": "user", "content": "go"}]
    )
    assert [(b.type, b.name, b.input) for b in msg.content] == [("tool_use", LONG_NAME, {"q": "x"})]
    assert [t["function"]["name"] for t in sent(world)["tools"]] == [short]


@STREAMS
def test_long_tool_name_is_shortened_upstream_and_restored_for_the_openai_sdk(world, stream):
    short = shorten_tool_name(LONG_NAME)
    world.fake.enqueue(Reply(tool_calls=[ToolCall(short, {"q": "x"}, id="toolu_1")], chunks=4))
    tools = [{"type": "function", "function": {"name": LONG_NAME, "parameters": SCHEMA}}]
    resp = openai_completion(world, stream, tools=tools, messages=[{"role": "user", "content": "go"}])
    calls = resp.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [(LONG_NAME, {"q": "x"})]
    assert [t["name"] for t in sent(world)["tools"]] == [short]


@STREAMS
def test_foreign_tool_call_id_becomes_a_valid_anthropic_id_and_stays_consistent(world, stream):
    """Kimi-style ``functions.lookup:0`` ids are rewritten for Anthropic clients (§2.1), the same way every turn."""
    world.fake.enqueue(Reply(tool_calls=[ToolCall("lookup", {"q": "x"}, id="functions.lookup:0")]), Reply(text="ok"))
    tools = [{"name": "lookup", "input_schema": SCHEMA}]
    question = {"role": "user", "content": "go"}
    first = claude_msg(world, stream, tools=tools, messages=[question])
    tool_id = first.content[0].id
    assert ANTHROPIC_ID.match(tool_id) and tool_id != "functions.lookup:0"
    result = {"type": "tool_result", "tool_use_id": tool_id, "content": "x=1"}
    history = [question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    claude_msg(world, stream, tools=tools, messages=history)
    turn2 = sent(world)["messages"]
    assert turn2[1]["tool_calls"][0]["id"] == tool_id
    assert turn2[2] == {"role": "tool", "tool_call_id": tool_id, "content": "x=1"}


@STREAMS
def test_tool_calls_reported_with_finish_reason_stop_still_mean_tool_use(world, stream):
    """Ollama/Gemini-style upstreams say ``stop`` after tool calls; Claude Code would never run the tool (§11.27)."""
    world.fake.enqueue(Reply(tool_calls=[ToolCall("lookup", {"q": "x"}, id="call_1")], finish_reason="end_turn"))
    msg = claude_msg(
        world, stream, tools=[{"name": "lookup", "input_schema": SCHEMA}], messages=[{"role": "user", "content": "go"}]
    )
    assert msg.stop_reason == "tool_use"


# ---------------------------------------------------------------- tool results


def test_anthropic_tool_result_with_an_image_and_an_error(world):
    world.fake.enqueue(Reply(text="I see a page"))
    tools = [{"name": "screenshot", "input_schema": SCHEMA}, {"name": "lookup", "input_schema": SCHEMA}]
    history = [
        {"role": "user", "content": "look"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_s", "name": "screenshot", "input": {"q": "page"}},
                {"type": "tool_use", "id": "call_l", "name": "lookup", "input": {"q": "x"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_s",
                    "content": [
                        {"type": "text", "text": "captured"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    ],
                },
                {"type": "tool_result", "tool_use_id": "call_l", "content": "no such key", "is_error": True},
                {"type": "text", "text": "What now?"},
            ],
        },
    ]
    msg = claude_msg(world, False, tools=tools, messages=history)
    assert msg.content[0].text == "I see a page"
    messages = sent(world)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_s", "content": "captured\n[image attached below]"}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_l", "content": "Error: no such key"}
    # Images are only allowed in user messages: they follow the tool messages, labelled.
    assert messages[4]["content"] == [
        {"type": "text", "text": "Images returned by tool screenshot:"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "text", "text": "What now?"},
    ]


def test_openai_tool_messages_and_a_following_user_message_make_one_anthropic_turn(world):
    world.fake.enqueue(Reply(text="ok"))
    history = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "Working on it.",
            "tool_calls": [
                {"id": "toolu_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"a"}'}},
                {"id": "toolu_b", "type": "function", "function": {"name": "lookup", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "A"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": ""},
        {"role": "user", "content": "and then?"},
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}]
    openai_completion(world, False, tools=tools, messages=history)
    messages = sent(world)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Working on it."},
        {"type": "tool_use", "id": "toolu_a", "name": "lookup", "input": {"q": "a"}},
        {"type": "tool_use", "id": "toolu_b", "name": "lookup", "input": {}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "(no output)"},
        {"type": "text", "text": "and then?"},
    ]


# ---------------------------------------------------------------- history repairs and request fields


def test_openai_system_and_developer_messages_anywhere_are_hoisted(world):
    world.fake.enqueue(Reply(text="ok"))
    history = [
        {"role": "developer", "content": "Rule one."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "Rule two."}]},
        {"role": "user", "content": "again"},
    ]
    openai_completion(world, False, messages=history)
    body = sent(world)
    assert body["system"] == [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["hi", "again"]


def test_openai_history_starting_with_the_assistant_gets_a_user_turn_first(world):
    world.fake.enqueue(Reply(text="ok"))
    history = [{"role": "assistant", "content": "Earlier answer."}, {"role": "user", "content": "go on"}]
    openai_completion(world, False, messages=history)
    messages = sent(world)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": "(conversation start)"}]


def test_anthropic_prefill_is_dropped_for_an_openai_upstream_and_reported(world):
    world.fake.enqueue(Reply(text="ok"))
    raw = anthropic_client(world).messages.with_raw_response.create(
        model="my-gpt",
        max_tokens=50,
        messages=[{"role": "user", "content": "list three"}, {"role": "assistant", "content": "1."}],
    )
    assert raw.parse().content[0].text == "ok"
    assert [m["role"] for m in sent(world)["messages"]] == ["user"]
    assert "prefill_dropped" in raw.headers["relay-conversion-notes"].split(",")


def test_anthropic_tool_choice_without_tools_is_dropped(world):
    world.fake.enqueue(Reply(text="ok"))
    raw = anthropic_client(world).messages.with_raw_response.create(
        model="my-gpt", max_tokens=50, tool_choice={"type": "any"}, messages=[{"role": "user", "content": "x"}]
    )
    assert raw.parse().content[0].text == "ok"
    assert "tool_choice" not in sent(world) and "tools" not in sent(world)
    assert "tool_choice_dropped" in raw.headers["relay-conversion-notes"].split(",")


def test_openai_sampling_is_fitted_to_anthropic_ranges(world):
    world.fake.enqueue(Reply(text="ok"))
    openai_completion(world, False, temperature=1.6, top_p=0.9, messages=[{"role": "user", "content": "x"}])
    body = sent(world)
    assert body["temperature"] == 1.0
    assert "top_p" not in body  # newer Claude models reject temperature and top_p together


@pytest.mark.parametrize(
    ("params", "field"),
    [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")],
    ids=["n", "logprobs"],
)
def test_openai_features_anthropic_cannot_serve_are_a_400_in_openai_shape(world, params, field):
    with pytest.raises(openai.BadRequestError) as info:
        openai_completion(world, False, messages=[{"role": "user", "content": "x"}], **params)
    error = info.value.response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{field}:")
    assert world.fake.requests == []  # refused before any upstream call


def test_anthropic_pdf_to_an_openai_upstream_without_pdf_input_is_a_400(world):
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_msg(world, False, messages=[{"role": "user", "content": [doc, {"type": "text", "text": "sum up"}]}])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "PDF input not supported" in info.value.body["error"]["message"]
    assert world.fake.requests == []


# ---------------------------------------------------------------- quota errors, estimated usage, operator betas


def test_openai_quota_exhaustion_is_an_anthropic_billing_error(world):
    world.fake.enqueue(Reply(status=429, text="You exceeded your current quota", error_type="insufficient_quota"))
    with pytest.raises(anthropic.APIStatusError) as info:
        claude_msg(world, False, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 402
    assert info.value.body["error"]["type"] == "billing_error"
    assert info.value.response.headers["x-should-retry"] == "false"  # retrying cannot help


def test_anthropic_billing_error_is_openai_insufficient_quota(world):
    world.fake.enqueue(Reply(status=402, text="Your credit balance is too low"))
    with pytest.raises(openai.RateLimitError) as info:
        openai_completion(world, False, messages=[{"role": "user", "content": "x"}])
    error = info.value.response.json()["error"]
    assert (info.value.status_code, error["code"]) == (429, "insufficient_quota")
    assert info.value.response.headers["x-should-retry"] == "false"


def test_stream_usage_is_estimated_when_the_upstream_cannot_report_it(stack, world):
    """A profile without ``stream_options``: the upstream sends no usage, so it is estimated, never zero (§2.6)."""
    up = stack.seed.upstream(world.tenant, base_url=world.fake.url + "/v1", dialect="openai")
    stack.seed.model(world.tenant, up, "quiet-gpt", upstream_model="quiet", profile={"supports_stream_options": False})
    world.fake.enqueue(Reply(text="a fairly long answer of several words", chunks=4))
    msg = claude_msg(world, True, model="quiet-gpt", messages=[{"role": "user", "content": "tell me something"}])
    assert "stream_options" not in sent(world)
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert rows[0].estimated is True and rows[0].input_tokens > 0 and rows[0].output_tokens > 0


@pytest.fixture(scope="module")
def beta_gateway(stack: Any) -> Any:
    """A second gateway on the same database with operator ``anthropic-beta`` defaults."""
    import dataclasses

    from support import GatewayServer

    defaults = ("claude-code-20250219", "prompt-caching-2024-07-31")
    server = GatewayServer(dataclasses.replace(stack.settings, anthropic_beta_defaults=defaults)).start()
    yield server
    server.stop()


def test_operator_beta_defaults_merge_with_the_clients(world, beta_gateway):
    world.fake.enqueue(Reply(text="a"), Reply(text="b"))
    beta = {"anthropic-beta": "prompt-caching-2024-07-31,tools-2024-04-04"}
    openai.OpenAI(
        base_url=beta_gateway.url + "/v1", api_key=world.key, max_retries=0, default_headers=beta
    ).chat.completions.create(model="my-claude", messages=[{"role": "user", "content": "x"}])
    merged = "claude-code-20250219,prompt-caching-2024-07-31,tools-2024-04-04"
    assert world.fake.requests[-1].headers["anthropic-beta"] == merged
    anthropic.Anthropic(
        base_url=beta_gateway.url, api_key=world.key, max_retries=0, default_headers=beta
    ).messages.create(model="my-gpt", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert "anthropic-beta" not in world.fake.requests[-1].headers


def test_thinking_suffix_to_a_model_without_reasoning_keeps_max_tokens(world):
    world.fake.enqueue(Reply(text="done"))
    claude_msg(world, False, model="my-gpt-thinking", max_tokens=100, messages=[{"role": "user", "content": "q"}])
    assert sent(world)["max_tokens"] == 100  # the client's cap; thinking is dropped for this upstream anyway


# ---------------------------------------------------------------- refusals and request ids


@STREAMS
def test_openai_content_filter_is_an_anthropic_refusal(world, stream):
    world.fake.enqueue(Reply(text="I can't help with that.", finish_reason="refusal"))
    msg = claude_msg(world, stream, messages=[{"role": "user", "content": "x"}])
    assert msg.stop_reason == "refusal"


def test_anthropic_refusal_is_an_openai_content_filter(world):
    world.fake.enqueue(Reply(text="I can't help with that.", finish_reason="refusal"))
    resp = openai_completion(world, False, messages=[{"role": "user", "content": "x"}])
    choice = resp.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.refusal == "I can't help with that."


def test_anthropic_sdk_sees_the_relay_request_id(world):
    world.fake.enqueue(Reply(text="ok"))
    msg = claude_msg(world, False, messages=[{"role": "user", "content": "x"}])
    assert (msg._request_id or "").startswith("req_")


def test_openai_sdk_sees_the_relay_request_id(world):
    world.fake.enqueue(Reply(text="ok"))
    resp = openai_completion(world, False, messages=[{"role": "user", "content": "x"}])
    assert (resp._request_id or "").startswith("req_")
