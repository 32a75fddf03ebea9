"""Cross-dialect translation end to end, driven by the official SDKs, on both backends (issue 3).

The ``anthropic`` SDK talks to ``my-gpt`` (an OpenAI-dialect upstream) and the ``openai`` SDK to
``my-claude`` (an Anthropic-dialect upstream). Each test checks what the SDK's own parsers and
stream helpers make of the answer, and what the converted request looked like at the fake upstream.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway.testing.fake_upstream import Reply, ToolCall

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
IMAGE_URL = "https://images.example.com/cat.png"
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])

A_TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {
        "name": "get_time",
        "description": "Local time in a zone",
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
]
O_TOOLS = [
    {
        "type": "function",
        "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]},
    }
    for t in A_TOOLS
]
PARALLEL_CALLS = [
    ToolCall("get_weather", {"city": "Paris"}, id="call_weather01"),
    ToolCall("get_time", {"tz": "Europe/Paris"}, id="call_time02"),
]


def anthropic_client(world: Any, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0, **kw)


def openai_client(world: Any, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0, **kw)


def sent(world: Any) -> dict[str, Any]:
    """The JSON body of the last request the fake upstream received."""
    body: dict[str, Any] = world.fake.requests[-1].json
    return body


def ask_claude_sdk(world: Any, stream: bool, **kw: Any) -> tuple[Any, list[Any], httpx.Headers]:
    """One Anthropic-SDK call: (final message, stream events or [], response headers)."""
    client = anthropic_client(world)
    kw.setdefault("model", "my-gpt")
    kw.setdefault("max_tokens", 100)
    if not stream:
        raw = client.messages.with_raw_response.create(**kw)
        return raw.parse(), [], raw.headers
    with client.messages.stream(**kw) as s:
        events = list(s)
        final = s.get_final_message()
        headers = s.response.headers
    return final, events, headers


def ask_openai_sdk(world: Any, stream: bool, **kw: Any) -> tuple[Any, list[Any], httpx.Headers]:
    """One OpenAI-SDK call: (final completion, stream events or [], response headers).

    Streaming goes through the SDK's ``chat.completions.stream`` helper, whose accumulator
    builds the final completion from the chunks.
    """
    client = openai_client(world)
    kw.setdefault("model", "my-claude")
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**kw)
        return raw.parse(), [], raw.headers
    with client.chat.completions.stream(**kw) as s:
        events = list(s)
        final = s.get_final_completion()
        headers = s._response.headers  # the helper keeps the HTTP response private
    return final, events, headers


def accumulate_chunks(chunks: list[Any]) -> dict[str, Any]:
    """Fold ``create(stream=True)`` chunks by hand: content, reasoning, tool calls by index, finish, usage."""
    out: dict[str, Any] = {"content": "", "reasoning": "", "tools": {}, "finish": [], "usage": None, "roles": []}
    for chunk in chunks:
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.role:
                out["roles"].append(delta.role)
            out["content"] += delta.content or ""
            out["reasoning"] += (delta.model_extra or {}).get("reasoning_content") or ""
            for tc in delta.tool_calls or []:
                slot = out["tools"].setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.id or ""
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            if choice.finish_reason:
                out["finish"].append(choice.finish_reason)
    return out


def notes_of(headers: httpx.Headers) -> set[str]:
    return set(filter(None, headers.get("relay-conversion-notes", "").split(",")))


# ---------------------------------------------------------------- plain text, model name, usage


@STREAMS
def test_anthropic_sdk_to_openai_upstream_text_and_usage(world, stack, stream):
    world.fake.enqueue(Reply(text="Hello from GPT", chunks=4, usage=(10, 5), cache_read_tokens=4))
    msg, events, _ = ask_claude_sdk(world, stream, messages=[{"role": "user", "content": "hi"}])
    assert msg.model == "my-gpt"
    assert msg.id.startswith("msg_")
    assert [(b.type, b.text) for b in msg.content] == [("text", "Hello from GPT")]
    assert msg.stop_reason == "end_turn"
    # OpenAI prompt_tokens (18) includes the 4 cached ones; Anthropic input_tokens excludes them.
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (10, 4, 5)
    assert msg.usage.cache_creation_input_tokens == 0
    if stream:
        kinds = [e.type for e in events]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hello from GPT"
        assert all(e.message.model == "my-gpt" for e in events if e.type == "message_start")

    req = world.fake.requests[-1]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer up-secret-openai"
    assert "x-api-key" not in req.headers and "anthropic-version" not in req.headers
    body = req.json
    assert body["model"] == "gpt-upstream-id"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 100
    if stream:
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    else:
        assert "stream" not in body and "stream_options" not in body

    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert [(r.model, r.door_dialect, r.upstream_dialect, r.stream, r.status) for r in rows] == [
        ("my-gpt", "anthropic", "openai", stream, 200)
    ]
    assert (rows[0].input_tokens, rows[0].output_tokens, rows[0].cache_read_tokens) == (10, 5, 4)
    assert rows[0].estimated is False


@STREAMS
def test_openai_sdk_to_anthropic_upstream_text_and_usage(world, stack, stream):
    world.fake.enqueue(Reply(text="Bonjour from Claude", chunks=4, usage=(10, 5), cache_read_tokens=4))
    kw: dict[str, Any] = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}
    if stream:
        kw["stream_options"] = {"include_usage": True}
    resp, events, _ = ask_openai_sdk(world, stream, **kw)
    assert resp.model == "my-claude"
    assert resp.id.startswith("chatcmpl-")
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Bonjour from Claude"
    assert choice.finish_reason == "stop"
    # Anthropic input_tokens (10) excludes cache reads; OpenAI prompt_tokens includes them.
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (14, 5, 19)
    assert resp.usage.prompt_tokens_details.cached_tokens == 4
    if stream:
        chunks = [e.chunk for e in events if e.type == "chunk"]
        assert len({c.id for c in chunks}) == 1 and all(c.model == "my-claude" for c in chunks)
        assert "".join(e.delta for e in events if e.type == "content.delta") == "Bonjour from Claude"

    req = world.fake.requests[-1]
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == "up-secret-anthropic"
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    body = req.json
    assert body["model"] == "claude-upstream-id"
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "hi"}]
    assert body["max_tokens"] == 8192  # the profile's default: Anthropic requires one
    assert "stream_options" not in body
    assert body.get("stream", False) is stream

    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert [(r.model, r.door_dialect, r.upstream_dialect, r.stream, r.status) for r in rows] == [
        ("my-claude", "openai", "anthropic", stream, 200)
    ]
    assert (rows[0].input_tokens, rows[0].output_tokens, rows[0].cache_read_tokens) == (10, 5, 4)


def test_openai_sdk_raw_stream_without_usage_requested(world, stack):
    world.fake.enqueue(Reply(text="a b c d e", chunks=5, usage=(8, 4), cache_read_tokens=2))
    chunks = list(
        openai_client(world).chat.completions.create(
            model="my-claude", messages=[{"role": "user", "content": "count"}], stream=True
        )
    )
    acc = accumulate_chunks(chunks)
    assert acc["content"] == "a b c d e"
    assert acc["roles"] == ["assistant"]  # the role only once, or the SDK accumulator doubles it
    assert acc["finish"] == ["stop"]
    assert acc["usage"] is None  # not asked for: no usage chunk
    assert all(c.model == "my-claude" for c in chunks)
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert (rows[0].input_tokens, rows[0].output_tokens, rows[0].cache_read_tokens) == (8, 4, 2)


def test_openai_sdk_raw_stream_with_usage_requested(world):
    world.fake.enqueue(Reply(text="x y", chunks=2, usage=(3, 2), cache_read_tokens=7, cache_write_tokens=1))
    chunks = list(
        openai_client(world).chat.completions.create(
            model="my-claude",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 2, 13)
    assert usage.prompt_tokens_details.cached_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])


# ---------------------------------------------------------------- a two-step tool loop with parallel calls


@STREAMS
def test_anthropic_sdk_parallel_tool_loop_through_openai_upstream(world, stack, stream):
    world.fake.enqueue(Reply(text="Let me check.", tool_calls=PARALLEL_CALLS, chunks=5, usage=(40, 20)))
    question = {"role": "user", "content": "Weather and time in Paris?"}
    first, events, _ = ask_claude_sdk(world, stream, messages=[question], tools=A_TOOLS)

    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use", "tool_use"]
    assert first.content[0].text == "Let me check."
    calls = [(b.id, b.name, b.input) for b in first.content[1:]]
    assert calls == [
        ("call_weather01", "get_weather", {"city": "Paris"}),
        ("call_time02", "get_time", {"tz": "Europe/Paris"}),
    ]
    if stream:
        starts = [e for e in events if e.type == "content_block_start"]
        assert [e.index for e in starts] == [0, 1, 2]
        json_deltas = [e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        assert len(json_deltas) >= 2  # the arguments arrived in pieces

    turn1 = sent(world)
    assert turn1["tools"] == [
        {
            "type": "function",
            "function": {"name": t["name"], "parameters": t["input_schema"], "description": t["description"]},
        }
        for t in A_TOOLS
    ]
    assert "tool_choice" not in turn1 and "parallel_tool_calls" not in turn1

    world.fake.enqueue(Reply(text="Sunny, and it is 14:00.", usage=(60, 8)))
    results = [
        {"type": "tool_result", "tool_use_id": "call_weather01", "content": "sunny, 21C"},
        {"type": "tool_result", "tool_use_id": "call_time02", "content": [{"type": "text", "text": "14:00"}]},
    ]
    history = [question, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]
    final, _, _ = ask_claude_sdk(world, stream, messages=history, tools=A_TOOLS)
    assert final.stop_reason == "end_turn"
    assert [b.text for b in final.content] == ["Sunny, and it is 14:00."]

    turn2 = sent(world)["messages"]
    assert [m["role"] for m in turn2] == ["user", "assistant", "tool", "tool"]
    assistant = turn2[1]
    assert assistant["content"] == "Let me check."
    assert [(c["id"], c["type"], c["function"]["name"]) for c in assistant["tool_calls"]] == [
        ("call_weather01", "function", "get_weather"),
        ("call_time02", "function", "get_time"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        {"city": "Paris"},
        {"tz": "Europe/Paris"},
    ]
    assert turn2[2:] == [
        {"role": "tool", "tool_call_id": "call_weather01", "content": "sunny, 21C"},
        {"role": "tool", "tool_call_id": "call_time02", "content": "14:00"},
    ]
    rows = stack.seed.usage_rows(world.tenant, expect=2)
    assert [(r.input_tokens, r.output_tokens, r.status) for r in rows] == [(40, 20, 200), (60, 8, 200)]


@STREAMS
def test_openai_sdk_parallel_tool_loop_through_anthropic_upstream(world, stack, stream):
    calls = [
        ToolCall("get_weather", {"city": "Paris"}, id="toolu_weather01"),
        ToolCall("get_time", {"tz": "Europe/Paris"}, id="toolu_time02"),
    ]
    world.fake.enqueue(Reply(tool_calls=calls, chunks=5, usage=(40, 20)))
    question = {"role": "user", "content": "Weather and time in Paris?"}
    first, events, _ = ask_openai_sdk(world, stream, messages=[question], tools=O_TOOLS)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert not choice.message.content
    got = [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls]
    assert got == [
        ("toolu_weather01", "function", "get_weather", {"city": "Paris"}),
        ("toolu_time02", "function", "get_time", {"tz": "Europe/Paris"}),
    ]
    if stream:
        done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
        assert [(e.index, e.name, json.loads(e.arguments)) for e in done] == [
            (0, "get_weather", {"city": "Paris"}),
            (1, "get_time", {"tz": "Europe/Paris"}),
        ]
        pieces = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
        assert len(pieces) >= 4  # each call's arguments arrived in several pieces

    turn1 = sent(world)
    assert turn1["tools"] == [
        {"name": t["name"], "input_schema": t["input_schema"], "description": t["description"]} for t in A_TOOLS
    ]
    assert "tool_choice" not in turn1

    world.fake.enqueue(Reply(text="Sunny, and it is 14:00.", usage=(60, 8)))
    history = [
        question,
        choice.message,  # the SDK's own message object, sent back as is
        {"role": "tool", "tool_call_id": "toolu_weather01", "content": "sunny, 21C"},
        {"role": "tool", "tool_call_id": "toolu_time02", "content": "14:00"},
    ]
    final, _, _ = ask_openai_sdk(world, stream, messages=history, tools=O_TOOLS)
    assert final.choices[0].message.content == "Sunny, and it is 14:00."
    assert final.choices[0].finish_reason == "stop"

    turn2 = sent(world)["messages"]
    assert [m["role"] for m in turn2] == ["user", "assistant", "user"]
    assert turn2[1]["content"] == [
        {"type": "tool_use", "id": "toolu_weather01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_time02", "name": "get_time", "input": {"tz": "Europe/Paris"}},
    ]
    assert turn2[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_weather01", "content": "sunny, 21C"},
        {"type": "tool_result", "tool_use_id": "toolu_time02", "content": "14:00"},
    ]
    rows = stack.seed.usage_rows(world.tenant, expect=2)
    assert [(r.input_tokens, r.output_tokens, r.status) for r in rows] == [(40, 20, 200), (60, 8, 200)]


def test_openai_sdk_raw_stream_accumulates_parallel_tool_calls(world):
    calls = [
        ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}, id="toolu_a"),
        ToolCall("get_time", {"tz": "Europe/Paris"}, id="toolu_b"),
    ]
    world.fake.enqueue(Reply(text="Checking.", tool_calls=calls, chunks=5))
    chunks = list(
        openai_client(world).chat.completions.create(
            model="my-claude", messages=[{"role": "user", "content": "go"}], tools=O_TOOLS, stream=True
        )
    )
    acc = accumulate_chunks(chunks)
    assert acc["content"] == "Checking."
    assert sorted(acc["tools"]) == [0, 1]  # contiguous tool indexes, not Anthropic block indexes
    assert [(t["id"], t["name"], json.loads(t["arguments"])) for t in acc["tools"].values()] == [
        ("toolu_a", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("toolu_b", "get_time", {"tz": "Europe/Paris"}),
    ]
    assert acc["finish"] == ["tool_calls"]


# ---------------------------------------------------------------- tool_choice and parallel tool use

A2O_CHOICES = [
    ({"type": "auto"}, "auto", None),
    ({"type": "any"}, "required", None),
    ({"type": "tool", "name": "get_time"}, {"type": "function", "function": {"name": "get_time"}}, None),
    ({"type": "none"}, "none", None),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
]


@pytest.mark.parametrize(("choice", "want", "parallel"), A2O_CHOICES, ids=lambda v: json.dumps(v))
def test_anthropic_tool_choice_becomes_openai_tool_choice(world, choice, want, parallel):
    world.fake.enqueue(Reply(text="ok"))
    ask_claude_sdk(world, False, messages=[{"role": "user", "content": "x"}], tools=A_TOOLS, tool_choice=choice)
    body = sent(world)
    assert body["tool_choice"] == want
    assert body.get("parallel_tool_calls") is parallel


O2A_CHOICES = [
    ({"tool_choice": "auto"}, {"type": "auto"}),
    ({"tool_choice": "required"}, {"type": "any"}),
    ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, {"type": "tool", "name": "get_time"}),
    ({"tool_choice": "none"}, {"type": "none"}),
    ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"tool_choice": "required", "parallel_tool_calls": False}, {"type": "any", "disable_parallel_tool_use": True}),
    ({"parallel_tool_calls": True}, None),
]


@pytest.mark.parametrize(("params", "want"), O2A_CHOICES, ids=lambda v: json.dumps(v))
def test_openai_tool_choice_becomes_anthropic_tool_choice(world, params, want):
    world.fake.enqueue(Reply(text="ok"))
    ask_openai_sdk(world, False, messages=[{"role": "user", "content": "x"}], tools=O_TOOLS, **params)
    assert sent(world).get("tool_choice") == want


# ---------------------------------------------------------------- images


def test_anthropic_images_arrive_as_openai_image_urls(world):
    world.fake.enqueue(Reply(text="two cats"))
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
    ]
    msg, _, _ = ask_claude_sdk(world, False, messages=[{"role": "user", "content": content}])
    assert msg.content[0].text == "two cats"
    assert sent(world)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": IMAGE_URL}},
            ],
        }
    ]


def test_openai_images_arrive_as_anthropic_image_blocks(world):
    world.fake.enqueue(Reply(text="two cats"))
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
    ]
    resp, _, _ = ask_openai_sdk(world, False, messages=[{"role": "user", "content": content}])
    assert resp.choices[0].message.content == "two cats"
    assert sent(world)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
            ],
        }
    ]


# ---------------------------------------------------------------- thinking and reasoning


@pytest.fixture
def reasoning_gpt(stack, world):
    """``my-gpt-r``: an OpenAI-dialect model whose profile speaks ``reasoning_effort`` and wants
    ``max_completion_tokens`` (capped at 1000)."""
    seed = stack.seed
    up = seed.upstream(world.tenant, base_url=world.fake.url + "/v1", dialect="openai", api_key="up-secret-r")
    profile = {"reasoning_dialect": "openai", "max_tokens_field": "max_completion_tokens", "max_output_tokens": 1000}
    seed.model(world.tenant, up, "my-gpt-r", upstream_model="o-reasoner", profile=profile)
    return "my-gpt-r"


@STREAMS
def test_anthropic_thinking_gets_openai_reasoning_back_as_a_thinking_block(world, stream):
    world.fake.enqueue(Reply(reasoning="step by step", text="42", chunks=3))
    msg, events, headers = ask_claude_sdk(
        world,
        stream,
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=[{"role": "user", "content": "6 x 7?"}],
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "step by step"
    assert msg.content[0].signature  # relay-minted: the SDK and Claude Code need one to replay the block
    assert msg.content[1].text == "42"
    if stream:
        thinking = [
            e.delta.thinking for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"
        ]
        assert "".join(thinking) == "step by step" and len(thinking) >= 2
        assert any(e.type == "content_block_delta" and e.delta.type == "signature_delta" for e in events)
    # my-gpt's profile has no reasoning dialect: nothing reasoning-shaped goes up, and the client is told.
    body = sent(world)
    assert not {"thinking", "reasoning_effort", "reasoning"} & set(body)
    assert "thinking_dropped" in notes_of(headers)


@STREAMS
def test_anthropic_thinking_to_a_reasoning_profile_sends_reasoning_effort(world, reasoning_gpt, stream):
    world.fake.enqueue(Reply(reasoning="hmm", text="42"))
    msg, _, headers = ask_claude_sdk(
        world,
        stream,
        model=reasoning_gpt,
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=[{"role": "user", "content": "6 x 7?"}],
    )
    assert msg.model == reasoning_gpt
    assert [b.type for b in msg.content] == ["thinking", "text"]
    body = sent(world)
    assert body["model"] == "o-reasoner"
    assert body["reasoning_effort"] == "low"  # budget 2000 ≤ 2048
    assert body["max_completion_tokens"] == 1000 and "max_tokens" not in body  # the profile's field and cap
    assert "max_tokens_clamped" in notes_of(headers)


@STREAMS
def test_openai_reasoning_effort_turns_on_anthropic_thinking(world, stream):
    world.fake.enqueue(Reply(reasoning="step by step", text="42", chunks=3))
    resp, events, _ = ask_openai_sdk(
        world, stream, reasoning_effort="high", messages=[{"role": "user", "content": "6 x 7?"}]
    )
    body = sent(world)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] > 16384  # the budget must fit under max_tokens
    message = resp.choices[0].message
    assert message.content == "42"
    assert (message.model_extra or {}).get("reasoning_content") == "step by step"
    if stream:
        reasoning = [
            (e.chunk.choices[0].delta.model_extra or {}).get("reasoning_content")
            for e in events
            if e.type == "chunk" and e.chunk.choices
        ]
        assert "".join(r for r in reasoning if r) == "step by step"


def test_openai_reasoning_within_max_completion_tokens(world):
    world.fake.enqueue(Reply(reasoning="r", text="ok"))
    ask_openai_sdk(
        world, False, reasoning_effort="medium", max_completion_tokens=4000, messages=[{"role": "user", "content": "q"}]
    )
    body = sent(world)
    assert body["max_tokens"] == 4000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4000 - 1024}


def test_thinking_suffix_on_the_openai_door_turns_on_anthropic_thinking(world):
    world.fake.enqueue(Reply(reasoning="deep", text="done"))
    resp, _, _ = ask_openai_sdk(world, False, model="my-claude-thinking", messages=[{"role": "user", "content": "q"}])
    body = sent(world)
    assert body["model"] == "claude-upstream-id"
    assert body["thinking"]["type"] == "enabled" and body["thinking"]["budget_tokens"] >= 1024
    assert body["max_tokens"] > body["thinking"]["budget_tokens"]
    assert resp.model == "my-claude-thinking"
    assert (resp.choices[0].message.model_extra or {}).get("reasoning_content") == "deep"


def test_thinking_suffix_on_the_anthropic_door_turns_on_openai_reasoning(world, reasoning_gpt):
    world.fake.enqueue(Reply(reasoning="deep", text="done"))
    msg, _, _ = ask_claude_sdk(
        world, True, model=reasoning_gpt + "-thinking", messages=[{"role": "user", "content": "q"}], max_tokens=16000
    )
    body = sent(world)
    assert body["model"] == "o-reasoner"
    assert body["reasoning_effort"] in ("medium", "high")
    assert msg.model == reasoning_gpt + "-thinking"
    assert [b.type for b in msg.content] == ["thinking", "text"]


def test_thinking_suffix_to_a_model_without_reasoning_says_so(world):
    world.fake.enqueue(Reply(text="done"))
    msg, _, headers = ask_claude_sdk(
        world, False, model="my-gpt-thinking", messages=[{"role": "user", "content": "q"}], max_tokens=16000
    )
    assert msg.model == "my-gpt-thinking"
    assert sent(world)["model"] == "gpt-upstream-id"
    assert "thinking_dropped" in notes_of(headers)


# ---------------------------------------------------------------- stop, user, limits, finish reasons


def test_anthropic_stop_sequences_metadata_and_max_tokens(world):
    world.fake.enqueue(Reply(text="ok"))
    ask_claude_sdk(
        world,
        False,
        max_tokens=321,
        stop_sequences=["END", "STOP"],
        metadata={"user_id": "user-123"},
        messages=[{"role": "user", "content": "x"}],
    )
    body = sent(world)
    assert body["stop"] == ["END", "STOP"]
    assert body["user"] == hashlib.sha256(b"user-123").hexdigest()  # hashed: no raw id or PII upstream
    assert body["max_tokens"] == 321
    assert "metadata" not in body and "stop_sequences" not in body


@pytest.mark.parametrize(("stop", "want"), [("END", ["END"]), (["END", "STOP"], ["END", "STOP"])])
def test_openai_stop_user_and_max_completion_tokens(world, stop, want):
    world.fake.enqueue(Reply(text="ok"))
    ask_openai_sdk(
        world,
        False,
        stop=stop,
        user="alice@example.com",
        max_completion_tokens=55,
        messages=[{"role": "user", "content": "x"}],
    )
    body = sent(world)
    assert body["stop_sequences"] == want
    assert body["metadata"] == {"user_id": hashlib.sha256(b"alice@example.com").hexdigest()}
    assert body["max_tokens"] == 55
    assert not {"stop", "user", "max_completion_tokens"} & set(body)


def test_openai_legacy_max_tokens(world):
    world.fake.enqueue(Reply(text="ok"))
    ask_openai_sdk(world, False, max_tokens=66, messages=[{"role": "user", "content": "x"}])
    assert sent(world)["max_tokens"] == 66


@STREAMS
def test_openai_length_finish_becomes_anthropic_max_tokens(world, stream):
    world.fake.enqueue(Reply(text="cut sho", finish_reason="length"))
    msg, _, _ = ask_claude_sdk(world, stream, messages=[{"role": "user", "content": "x"}])
    assert msg.stop_reason == "max_tokens"
    assert msg.content[0].text == "cut sho"


@pytest.mark.parametrize(
    ("stop_reason", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop"), ("end_turn", "stop")]
)
@STREAMS
def test_anthropic_stop_reason_becomes_openai_finish_reason(world, stream, stop_reason, finish):
    world.fake.enqueue(Reply(text="cut sho", finish_reason=stop_reason))
    if stream:
        chunks = list(
            openai_client(world).chat.completions.create(
                model="my-claude", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
        acc = accumulate_chunks(chunks)
        assert (acc["content"], acc["finish"]) == ("cut sho", [finish])
    else:
        resp, _, _ = ask_openai_sdk(world, False, messages=[{"role": "user", "content": "x"}])
        assert (resp.choices[0].message.content, resp.choices[0].finish_reason) == ("cut sho", finish)


# ---------------------------------------------------------------- upstream errors in the door's envelope

# OpenAI-dialect upstream status -> (Anthropic door status, error.type), conversion.md §9.5
O_UPSTREAM_ERRORS = {
    400: (400, "invalid_request_error"),
    401: (502, "api_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    408: (504, "timeout_error"),
    413: (413, "request_too_large"),
    422: (400, "invalid_request_error"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (502, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
    529: (529, "overloaded_error"),
}
# Anthropic-dialect upstream status -> (OpenAI door status, error.type, error.code)
A_UPSTREAM_ERRORS = {
    400: (400, "invalid_request_error", None),
    401: (502, "server_error", "upstream_authentication_failed"),
    403: (403, "permission_error", None),
    404: (404, "invalid_request_error", None),
    413: (413, "invalid_request_error", "request_too_large"),
    429: (429, "requests", "rate_limit_exceeded"),
    500: (500, "server_error", None),
    502: (502, "server_error", None),
    504: (504, "server_error", "timeout"),
    529: (503, "server_error", "overloaded"),
}


@pytest.mark.parametrize("status", list(O_UPSTREAM_ERRORS))
@STREAMS
def test_openai_upstream_error_reaches_the_anthropic_sdk_as_its_error(world, stack, status, stream):
    want_status, want_type = O_UPSTREAM_ERRORS[status]
    world.fake.enqueue(Reply(status=status, text=f"upstream refused ({status})", headers={"retry-after": "3"}))
    with pytest.raises(anthropic.APIStatusError) as info:
        ask_claude_sdk(world, stream, messages=[{"role": "user", "content": "x"}])
    err = info.value
    assert err.status_code == want_status
    assert err.body["type"] == "error"
    assert err.body["error"]["type"] == want_type
    assert err.response.headers["request-id"].startswith("req_")
    if status == 401:
        assert err.body["error"]["message"] == "upstream authentication failed"
        assert err.response.headers["x-should-retry"] == "false"
        assert "up-secret" not in err.response.text
    else:
        assert f"upstream refused ({status})" in err.body["error"]["message"]
    if status == 429:
        assert err.response.headers["retry-after"] == "3"
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert rows[0].status == want_status and rows[0].error_code


@pytest.mark.parametrize("status", list(A_UPSTREAM_ERRORS))
@STREAMS
def test_anthropic_upstream_error_reaches_the_openai_sdk_as_its_error(world, stack, status, stream):
    want_status, want_type, want_code = A_UPSTREAM_ERRORS[status]
    world.fake.enqueue(Reply(status=status, text=f"upstream refused ({status})", headers={"retry-after": "3"}))
    with pytest.raises(openai.APIStatusError) as info:
        ask_openai_sdk(world, stream, messages=[{"role": "user", "content": "x"}])
    err = info.value
    assert err.status_code == want_status
    error = err.response.json()["error"]
    assert (error["type"], error["code"]) == (want_type, want_code)
    assert set(error) >= {"message", "type", "param", "code"}
    if status == 401:
        assert error["message"] == "upstream authentication failed"
        assert err.response.headers["x-should-retry"] == "false"
        assert "up-secret" not in err.response.text
    else:
        assert f"upstream refused ({status})" in error["message"]
    if status == 429:
        assert err.response.headers["retry-after"] == "3"
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert rows[0].status == want_status and rows[0].error_code


CONTEXT_MESSAGE = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 150000 tokens. "
    "Please reduce the length of the messages."
)


@pytest.mark.parametrize("code", [None, "context_length_exceeded"])
@STREAMS
def test_openai_context_length_error_becomes_prompt_is_too_long(world, code, stream):
    world.fake.enqueue(Reply(status=400, text=CONTEXT_MESSAGE, error_type=code))
    with pytest.raises(anthropic.BadRequestError) as info:
        ask_claude_sdk(world, stream, messages=[{"role": "user", "content": "x"}])
    error = info.value.body["error"]
    assert error["type"] == "invalid_request_error"
    # The exact wording Claude Code matches to compact the conversation.
    assert error["message"] == "prompt is too long: 150000 tokens > 128000 maximum"


@STREAMS
def test_anthropic_prompt_too_long_becomes_context_length_exceeded(world, stream):
    world.fake.enqueue(Reply(status=400, text="prompt is too long: 210000 tokens > 200000 maximum"))
    with pytest.raises(openai.BadRequestError) as info:
        ask_openai_sdk(world, stream, messages=[{"role": "user", "content": "x"}])
    error = info.value.response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "context_length_exceeded")
    assert "prompt is too long" in error["message"]


# ---------------------------------------------------------------- streams that fail part way


def test_openai_mid_stream_error_ends_the_anthropic_stream_with_an_error_event(world, stack):
    world.fake.enqueue(Reply(text="partial answer here", chunks=3, usage=(12, 3), stream_error="overloaded"))
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        anthropic_client(world).messages.stream(
            model="my-gpt", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as s,
    ):
        seen.extend(s.text_stream)
    assert "".join(seen).startswith("partial")  # what came before the error was relayed
    assert info.value.body["error"]["type"] == "overloaded_error"
    assert "overloaded" in info.value.body["error"]["message"]
    assert stack.seed.usage_rows(world.tenant, expect=1)


def test_anthropic_mid_stream_error_ends_the_openai_stream_with_an_error_chunk(world, stack):
    world.fake.enqueue(
        Reply(
            text="partial answer here",
            chunks=3,
            usage=(12, 3),
            stream_error="Overloaded",
            error_type="overloaded_error",
        )
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in openai_client(world).chat.completions.create(
            model="my-claude", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen).startswith("partial")
    assert "Overloaded" in info.value.message
    assert (info.value.body or {}).get("code") == "overloaded"
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert rows[0].input_tokens == 12  # seen in message_start before the failure


@pytest.mark.parametrize("door", ["anthropic", "openai"])
def test_mid_stream_upstream_error_is_metered_as_a_failure(world, stack, door):
    world.fake.enqueue(Reply(text="partial answer here", chunks=3, usage=(12, 3), stream_error="overloaded"))
    if door == "anthropic":
        with pytest.raises(anthropic.APIStatusError):
            ask_claude_sdk(world, True, messages=[{"role": "user", "content": "x"}])
    else:
        with pytest.raises(openai.APIError):
            list(
                openai_client(world).chat.completions.create(
                    model="my-claude", messages=[{"role": "user", "content": "x"}], stream=True
                )
            )
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    # Like a cut or idle stream (502 upstream_stream_error): the ledger must not call this call a success.
    assert (rows[0].status != 200, rows[0].error_code is not None) == (True, True)


@pytest.mark.parametrize("door", ["anthropic", "openai"])
def test_cut_upstream_stream_makes_the_sdk_raise_and_is_metered(world, stack, door):
    world.fake.enqueue(Reply(text="one two three four five six", chunks=6, usage=(20, 9), cut_after=3))
    if door == "anthropic":
        with (
            pytest.raises(anthropic.APIStatusError) as a_info,
            anthropic_client(world).messages.stream(
                model="my-gpt", max_tokens=100, messages=[{"role": "user", "content": "x"}]
            ) as s,
        ):
            s.get_final_message()
        assert a_info.value.body["error"]["type"] == "api_error"
    else:
        with pytest.raises(openai.APIError):
            list(
                openai_client(world).chat.completions.create(
                    model="my-claude", messages=[{"role": "user", "content": "x"}], stream=True
                )
            )
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert [(r.stream, r.status, r.error_code) for r in rows] == [(True, 502, "upstream_stream_error")]


# ---------------------------------------------------------------- Claude Code-shaped requests to an OpenAI upstream


def claude_code_body(stream: bool) -> dict[str, Any]:
    return {
        "model": "my-gpt",
        "max_tokens": 32000,
        "stream": stream,
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": json.dumps({"device_id": "x", "session_id": "s"})},
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.abc; cc_entrypoint=sdk-cli;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Main prompt.", "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                },
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "Today is Monday."},
        ],
    }


@STREAMS
def test_claude_code_shaped_request_to_an_openai_upstream(world, stream):
    world.fake.enqueue(Reply(text="Hi! How can I help?", usage=(100, 6)))
    client = anthropic_client(world, default_headers={"anthropic-beta": "claude-code-20250219,context-1m-2025-08-07"})
    body = claude_code_body(stream)
    extra = {"context_management": body["context_management"]}  # not a parameter of this SDK version
    kw = {k: v for k, v in body.items() if k not in ("stream", "context_management")}
    if stream:
        with client.messages.stream(**kw, extra_body=extra) as s:
            msg = s.get_final_message()
            headers = s.response.headers
    else:
        # An explicit timeout lifts the SDK's "streaming is required" refusal for a max_tokens this large.
        raw = client.messages.with_raw_response.create(**kw, extra_body=extra, timeout=30)
        msg, headers = raw.parse(), raw.headers
    assert msg.content[0].text == "Hi! How can I help?"
    assert msg.model == "my-gpt"

    req = world.fake.requests[-1]
    assert "anthropic-beta" not in req.headers
    up = req.json
    assert "cache_control" not in json.dumps(up)
    for key in ("thinking", "output_config", "context_management", "metadata", "system"):
        assert key not in up
    assert up["user"] == hashlib.sha256(body["metadata"]["user_id"].encode()).hexdigest()
    assert up["max_tokens"] == 32000
    roles = [m["role"] for m in up["messages"]]
    assert roles[0] == "system" and "system" not in roles[1:]  # one leading system message, none in the middle
    assert up["messages"][0]["content"] == "You are Claude Code.\n\nMain prompt."  # the billing header is gone
    assert roles == ["system", "user"]
    user_text = up["messages"][1]["content"]
    assert "hello" in user_text and "Today is Monday." in user_text
    assert [t["function"]["name"] for t in up["tools"]] == ["Bash"]  # the server tool has no OpenAI form
    assert "$schema" not in up["tools"][0]["function"]["parameters"]
    notes = notes_of(headers)
    assert {"context_management_dropped", "server_tool_dropped", "thinking_dropped"} <= notes


def test_claude_code_adaptive_thinking_becomes_reasoning_effort(world, reasoning_gpt):
    world.fake.enqueue(Reply(reasoning="thinking hard", text="Hi!"))
    body = claude_code_body(True)
    with anthropic_client(world).messages.stream(
        **{k: v for k, v in body.items() if k not in ("stream", "context_management", "model")},
        model=reasoning_gpt,
        extra_body={"context_management": body["context_management"]},
    ) as s:
        msg = s.get_final_message()
    assert [b.type for b in msg.content] == ["thinking", "text"]
    up = sent(world)
    assert up["reasoning_effort"] == "high"  # output_config.effort
    assert up["max_completion_tokens"] == 1000  # 32000 clamped to the profile's cap


def test_claude_code_system_message_last_is_not_a_400(world):
    world.fake.enqueue(Reply(text="ok"))
    msg, _, _ = ask_claude_sdk(
        world,
        True,
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
            {"role": "system", "content": "Reminder: be brief."},
        ],
    )
    assert msg.content[0].text == "ok"
    roles = [m["role"] for m in sent(world)["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert "Reminder: be brief." in sent(world)["messages"][-1]["content"]


# ---------------------------------------------------------------- anthropic-beta


def test_anthropic_beta_reaches_anthropic_upstreams_deduplicated_and_never_openai_ones(world):
    world.fake.enqueue(Reply(text="a"), Reply(text="b"), Reply(text="c"))
    beta = {"anthropic-beta": "prompt-caching-2024-07-31, tools-2024-04-04,prompt-caching-2024-07-31"}
    openai_client(world, default_headers=beta).chat.completions.create(
        model="my-claude", messages=[{"role": "user", "content": "x"}]
    )
    to_claude = world.fake.requests[-1]
    assert to_claude.path == "/v1/messages"
    assert to_claude.headers["anthropic-beta"] == "prompt-caching-2024-07-31,tools-2024-04-04"

    anthropic_client(world, default_headers=beta).messages.create(
        model="my-claude", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert world.fake.requests[-1].headers["anthropic-beta"] == "prompt-caching-2024-07-31,tools-2024-04-04"

    anthropic_client(world, default_headers=beta).messages.create(
        model="my-gpt", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    to_gpt = world.fake.requests[-1]
    assert to_gpt.path == "/v1/chat/completions"
    assert not [h for h in to_gpt.headers if h.startswith("anthropic-") or h == "x-api-key"]
