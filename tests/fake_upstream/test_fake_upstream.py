"""The fake upstream speaks both dialects exactly enough for the official SDKs to parse it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway.testing.fake_upstream import FakeUpstream, Reply, ToolCall

MSGS = [{"role": "user", "content": "hi there"}]
OAI_BODY: dict[str, Any] = {"model": "gpt-x", "messages": MSGS}
ANT_BODY: dict[str, Any] = {"model": "claude-x", "max_tokens": 100, "messages": MSGS}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeUpstream) -> Iterator[FakeUpstream]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=10) as c:
        yield c


def sse(raw: str) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a complete SSE body."""
    out = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        out.append((event, "\n".join(data)))
    return out


def stream_text(client: httpx.Client, path: str, body: dict[str, Any], **kw: Any) -> str:
    with client.stream("POST", path, json={**body, "stream": True}, **kw) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read().decode()


def check_anthropic_grammar(events: list[tuple[str | None, str]]) -> list[dict[str, Any]]:
    """Assert the Messages stream grammar; return the decoded payloads."""
    payloads = [json.loads(d) for _, d in events]
    for (name, _), p in zip(events, payloads, strict=True):
        assert name == p["type"]
    types = [p["type"] for p in payloads]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.count("message_delta") == 1
    open_index, next_index, block_type = None, 0, None
    allowed = {
        "text": {"text_delta"},
        "thinking": {"thinking_delta", "signature_delta"},
        "tool_use": {"input_json_delta"},
    }
    for p in payloads[1:-2]:
        if p["type"] == "content_block_start":
            assert open_index is None and p["index"] == next_index
            open_index, block_type = p["index"], p["content_block"]["type"]
        elif p["type"] == "content_block_delta":
            assert p["index"] == open_index and p["delta"]["type"] in allowed[block_type]
        elif p["type"] == "content_block_stop":
            assert p["index"] == open_index
            open_index, next_index = None, next_index + 1
        else:
            assert p["type"] == "ping"
    assert open_index is None
    return payloads


def openai_chunks(raw: str) -> list[dict[str, Any]]:
    events = sse(raw)
    assert events[-1] == (None, "[DONE]")
    return [json.loads(d) for _, d in events[:-1]]


# ------------------------------------------------------------------ OpenAI


def test_openai_non_stream_echo_and_usage(fake: FakeUpstream, client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=OAI_BODY)
    assert r.status_code == 200
    body = r.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-x"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "echo: hi there", "refusal": None}
    assert choice["finish_reason"] == "stop"
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["prompt_tokens_details"] == {"cached_tokens": 0}


def test_openai_non_stream_tools_reasoning_cache(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(
        Reply(
            text="",
            reasoning="hmm",
            tool_calls=[ToolCall("get_weather", {"city": "Paris"})],
            usage=(10, 5),
            cache_read_tokens=100,
            cache_write_tokens=7,
            model="other",
        )
    )
    body = client.post("/v1/chat/completions", json=OAI_BODY).json()
    msg = body["choices"][0]["message"]
    assert msg["content"] is None and msg["reasoning_content"] == "hmm"
    (call,) = msg["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["model"] == "other"
    assert body["usage"]["prompt_tokens"] == 117 and body["usage"]["completion_tokens"] == 5
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 100


def test_openai_stream_shape(fake: FakeUpstream, client: httpx.Client) -> None:
    calls = [ToolCall("a", {"x": "long value " * 5}), ToolCall("b", {"y": [1, 2, 3]}, id="call_fixed")]
    fake.enqueue(Reply(text="Hello there world", reasoning="because", tool_calls=calls, chunks=3))
    chunks = openai_chunks(stream_text(client, "/v1/chat/completions", OAI_BODY))
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert all("role" not in d for d in deltas[1:])
    assert "".join(d.get("content") or "" for d in deltas) == "Hello there world"
    assert sum("content" in d for d in deltas[1:]) == 3
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "because"
    frags = [tc for d in deltas for tc in d.get("tool_calls", [])]
    for i, call in enumerate(calls):
        mine = [f for f in frags if f["index"] == i]
        assert mine[0]["type"] == "function" and mine[0]["function"]["name"] == call.name
        assert all("id" not in f and "name" not in f["function"] for f in mine[1:])
        assert len(mine) >= 3
        assert json.loads("".join(f["function"]["arguments"] for f in mine)) == call.arguments
    assert frags[[f["index"] for f in frags].index(1)]["id"] == "call_fixed"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[-1] == "tool_calls" and finishes.count(None) == len(chunks) - 1
    assert deltas[-1] == {}


def test_openai_stream_include_usage(client: httpx.Client) -> None:
    body = {**OAI_BODY, "stream_options": {"include_usage": True}}
    chunks = openai_chunks(stream_text(client, "/v1/chat/completions", body))
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_finish_reason_override_maps_per_dialect(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(finish_reason="length"), Reply(finish_reason="length"))
    assert client.post("/v1/chat/completions", json=OAI_BODY).json()["choices"][0]["finish_reason"] == "length"
    assert client.post("/v1/messages", json=ANT_BODY).json()["stop_reason"] == "max_tokens"


# ------------------------------------------------------------------ Anthropic


def test_anthropic_non_stream(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(
        Reply(
            text="hi",
            reasoning="plan",
            tool_calls=[ToolCall("ls", {"path": "/"})],
            usage=(12, 3),
            cache_read_tokens=4,
            cache_write_tokens=2,
        )
    )
    body = client.post("/v1/messages", json=ANT_BODY).json()
    assert body["id"].startswith("msg_") and body["type"] == "message" and body["role"] == "assistant"
    assert body["model"] == "claude-x" and body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    thinking, text, tool = body["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "plan" and thinking["signature"]
    assert text == {"type": "text", "text": "hi"}
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_") and tool["input"] == {"path": "/"}
    assert body["usage"] == {
        "input_tokens": 12,
        "output_tokens": 3,
        "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 4,
    }


def test_anthropic_stream_grammar(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="one two three four five", reasoning="deep thought", tool_calls=[ToolCall("f", {"k": 1})]))
    payloads = check_anthropic_grammar(sse(stream_text(client, "/v1/messages", ANT_BODY)))
    starts = [p["content_block"]["type"] for p in payloads if p["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    deltas = [p["delta"] for p in payloads if p["type"] == "content_block_delta"]
    assert "".join(d.get("text", "") for d in deltas) == "one two three four five"
    assert sum(d["type"] == "text_delta" for d in deltas) == 4
    thinking = [d["type"] for d in deltas if d["type"] in ("thinking_delta", "signature_delta")]
    assert thinking[-1] == "signature_delta" and thinking.count("signature_delta") == 1
    assert json.loads("".join(d.get("partial_json", "") for d in deltas)) == {"k": 1}
    assert payloads[0]["message"]["usage"]["input_tokens"] > 0
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_echo_of_block_content(client: httpx.Client) -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    body = client.post("/v1/messages", json={**ANT_BODY, "messages": msgs}).json()
    assert body["content"] == [{"type": "text", "text": "echo: ab"}]
    assert body["stop_reason"] == "end_turn"


def test_count_tokens_matches_usage_estimate(client: httpx.Client) -> None:
    n = client.post("/v1/messages/count_tokens", json=ANT_BODY).json()
    assert set(n) == {"input_tokens"} and n["input_tokens"] > 0
    usage = client.post("/v1/messages", json=ANT_BODY).json()["usage"]
    assert usage["input_tokens"] == n["input_tokens"]


def test_models_both_shapes_and_prefixes(fake: FakeUpstream, client: httpx.Client) -> None:
    oai = client.get("/v1/models").json()
    assert oai["object"] == "list" and oai["data"][0] == {
        "id": "fake-model",
        "object": "model",
        "created": oai["data"][0]["created"],
        "owned_by": "fake",
    }
    ant = client.get("/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
    assert ant["data"][0]["type"] == "model" and ant["first_id"] == "fake-model" and ant["has_more"] is False
    assert client.get("/v1/models/fake-model").json()["id"] == "fake-model"
    assert client.get("/v1/models/nope").status_code == 404
    r = client.post("/some/prefix/v1/chat/completions", json=OAI_BODY)
    assert r.json()["object"] == "chat.completion"
    assert client.post("/x/messages", json=ANT_BODY).json()["type"] == "message"
    assert client.post("/v1/nothing", json={}).json()["error"]["type"] == "invalid_request_error"
    assert [q.path for q in fake.requests][-2:] == ["/x/messages", "/v1/nothing"]


# ------------------------------------------------------------------ errors and scripting


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_bodies(fake: FakeUpstream, client: httpx.Client, status: int, etype: str) -> None:
    fake.enqueue(Reply(status=status, headers={"retry-after": "3"}), Reply(status=status, text="boom"))
    r = client.post("/v1/messages", json={**ANT_BODY, "stream": True})
    assert r.status_code == status and r.headers["retry-after"] == "3" and r.headers["request-id"].startswith("req_")
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == etype
    r = client.post("/v1/chat/completions", json=OAI_BODY)
    err = r.json()["error"]
    assert r.status_code == status and err["message"] == "boom" and {"type", "code", "param"} <= set(err)


def test_raw_body_override(fake: FakeUpstream, client: httpx.Client) -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    fake.enqueue(Reply(status=502, body=html, content_type="text/html; charset=utf-8"))
    r = client.post("/v1/chat/completions", json=OAI_BODY)
    assert r.status_code == 502 and r.content == html and r.headers["content-type"].startswith("text/html")


def test_queue_then_default_and_reset(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="first"), Reply(text="second"))
    fake.set_default(Reply(text="dflt"))
    texts = [client.post("/v1/messages", json=ANT_BODY).json()["content"][0]["text"] for _ in range(4)]
    assert texts == ["first", "second", "dflt", "dflt"]
    assert len(fake.requests) == 4
    rec = fake.requests[0]
    assert rec.method == "POST" and rec.json == ANT_BODY and rec.headers["content-type"] == "application/json"
    fake.enqueue(Reply(text="queued"))
    fake.reset()
    assert fake.requests == []
    assert client.post("/v1/messages", json=ANT_BODY).json()["content"][0]["text"] == "echo: hi there"


def test_x_fake_reply_header(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="queued"))
    reply = Reply(text="per-request", tool_calls=[ToolCall("t", {"a": 1})], usage=(9, 8))
    r = client.post("/v1/chat/completions", json=OAI_BODY, headers={"x-fake-reply": reply.header_value()})
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "per-request"
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "t"
    assert body["usage"]["prompt_tokens"] == 9
    raw = json.dumps({"status": 429, "tool_calls": [{"name": "x", "arguments": {}}]})
    r = client.post("/v1/messages", json=ANT_BODY, headers={"x-fake-reply": raw})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    r = client.post("/v1/messages", json=ANT_BODY, headers={"x-fake-reply": '{"bogus": 1}'})
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]
    assert client.post("/v1/messages", json=ANT_BODY).json()["content"][0]["text"] == "queued"


def test_cut_after_leaves_stream_incomplete(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(cut_after=3, text="abcdefgh"), Reply(cut_after=2))
    for path, body, terminator in [
        ("/v1/chat/completions", OAI_BODY, "[DONE]"),
        ("/v1/messages", ANT_BODY, "message_stop"),
    ]:
        got = ""
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client.stream("POST", path, json={**body, "stream": True}) as r,
        ):
            for text in r.iter_text():
                got += text
        assert terminator not in got
    assert fake.cancelled == 0


def test_chunk_delay_streams_incrementally(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="abcdefgh", chunks=4, chunk_delay_s=0.1))
    t0 = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json={**OAI_BODY, "stream": True}) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        t_first = time.monotonic() - t0
        rest = list(lines)
    t_end = time.monotonic() - t0
    assert '"role":"assistant"' in first
    assert rest[-2] == "data: [DONE]" or rest[-1] == "data: [DONE]"
    assert t_first < 0.3 and t_end >= 0.6 and t_end - t_first >= 0.5


def test_delay_before_headers(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(delay_s=0.3))
    t0 = time.monotonic()
    assert client.post("/v1/chat/completions", json=OAI_BODY).status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_stream_error_events(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="partial", stream_error="overloaded"), Reply(text="partial", stream_error="overloaded"))
    events = sse(stream_text(client, "/v1/messages", ANT_BODY))
    assert events[-1][0] == "error"
    last = json.loads(events[-1][1])
    assert last == {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}}
    assert "message_stop" not in [e for e, _ in events] and "message_delta" not in [e for e, _ in events]
    raw = stream_text(client, "/v1/chat/completions", OAI_BODY)
    assert "[DONE]" not in raw
    chunks = [json.loads(d) for _, d in sse(raw)]
    assert chunks[-1]["error"]["message"] == "overloaded"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_in_flight_and_cancelled(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="x" * 50, chunks=50, chunk_delay_s=0.05))
    with client.stream("POST", "/v1/chat/completions", json={**OAI_BODY, "stream": True}) as r:
        lines = r.iter_lines()  # keep a reference: a discarded httpx iterator closes the response
        assert next(lines).startswith("data: ")
        time.sleep(0.2)
        assert (fake.in_flight, fake.cancelled) == (1, 0)
    deadline = time.monotonic() + 5
    while (fake.cancelled, fake.in_flight) != (1, 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (fake.cancelled, fake.in_flight) == (1, 0)


# ------------------------------------------------------------------ official SDKs


def test_openai_sdk_parses(fake: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    fake.enqueue(Reply(text="plain"))
    done = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert done.choices[0].message.content == "plain" and done.usage is not None
    calls = [ToolCall("get_weather", {"city": "Paris", "days": 3}), ToolCall("noop", {})]
    fake.enqueue(Reply(text="Let me check.", tool_calls=calls, cache_read_tokens=5))
    with sdk.chat.completions.stream(model="m", messages=[{"role": "user", "content": "q"}]) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Let me check." and msg.role == "assistant"
    assert msg.tool_calls is not None
    assert [(t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 3}),
        ("noop", {}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    fake.enqueue(Reply(text="abc"))
    it = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "q"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(it)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "abc"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens_details is not None
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 0
    fake.enqueue(Reply(stream_error="upstream died"))
    with pytest.raises(openai.APIError, match="upstream died"):
        list(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}], stream=True))
    fake.enqueue(Reply(status=429, headers={"retry-after": "0"}))
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert [m.id for m in sdk.models.list()] == ["fake-model"]


def test_anthropic_sdk_parses(fake: FakeUpstream) -> None:
    sdk = anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0)
    kw: dict[str, Any] = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "q"}]}
    fake.enqueue(Reply(text="plain", cache_read_tokens=3))
    msg = sdk.messages.create(**kw)
    assert msg.content[0].type == "text" and msg.content[0].text == "plain"
    assert msg.usage.cache_read_input_tokens == 3
    fake.enqueue(Reply(text="Answer.", reasoning="Let me think.", tool_calls=[ToolCall("bash", {"cmd": "ls -la"})]))
    with sdk.messages.stream(**kw) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "Answer."
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    thinking, _, tool = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think." and thinking.signature
    assert tool.type == "tool_use" and tool.input == {"cmd": "ls -la"} and tool.id.startswith("toolu_")
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0
    assert sdk.messages.count_tokens(model="claude-x", messages=kw["messages"]).input_tokens > 0
    fake.enqueue(Reply(text="x", stream_error="Overloaded"))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"), sdk.messages.stream(**kw) as stream:
        stream.get_final_message()
    fake.enqueue(Reply(status=529))
    with pytest.raises(anthropic.InternalServerError) as info:
        sdk.messages.create(**kw)
    assert info.value.status_code == 529
    assert [m.id for m in sdk.models.list()] == ["fake-model"]


# ------------------------------------------------------------------ async use and CLI


async def test_async_start_in_running_loop() -> None:
    async with FakeUpstream() as fake, httpx.AsyncClient(base_url=fake.url) as c:
        fake.enqueue(Reply(text="async"))
        r = await c.post("/v1/messages", json=ANT_BODY)
        assert r.json()["content"][0]["text"] == "async"


def test_cli_serves_echo() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.testing.fake_upstream", "--port", str(port)],
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        assert "listening" in proc.stderr.readline().decode()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=OAI_BODY)
        assert r.json()["choices"][0]["message"]["content"] == "echo: hi there"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
