"""The fake upstream speaks the OpenAI Responses API on ``…/responses`` (JSON and SSE) well enough for the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from gateway.testing.fake_responses import responses_input_messages, responses_object, responses_stream
from gateway.testing.fake_upstream import FakeUpstream, Reply, ToolCall

BODY: dict[str, Any] = {"model": "gpt-r", "input": "hi there"}
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
LIFECYCLE = {"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"}
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=10) as c:
        yield c


def parse_frames(raw: str) -> list[dict[str, Any]]:
    """Decode a complete Responses SSE body: each frame is ``event: T`` + ``data: {"type": T, ...}``."""
    out = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        payload = json.loads(lines[1][6:])
        assert payload["type"] == lines[0][7:]
        out.append(payload)
    return out


def frames(blobs: list[bytes]) -> list[dict[str, Any]]:
    return parse_frames(b"".join(blobs).decode())


def check_grammar(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assert the canonical Responses stream order; return the items closed by ``output_item.done``."""
    for e in events:
        EVENT.validate_python(e)  # strict: every field the SDK types require is present and well typed
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[-1]["type"] in TERMINAL and sum(e["type"] in TERMINAL for e in events) == 1
    assert len({e["response"]["id"] for e in events if e["type"] in LIFECYCLE}) == 1
    done: list[dict[str, Any]] = []
    open_item: dict[str, Any] | None = None
    for e in events[2:-1]:
        if e["type"] == "response.output_item.added":
            assert open_item is None and e["output_index"] == len(done)
            assert e["item"]["status"] == "in_progress"
            open_item = e["item"]
        elif e["type"] == "response.output_item.done":
            assert open_item is not None and e["output_index"] == len(done)
            assert (e["item"]["type"], e["item"]["id"]) == (open_item["type"], open_item["id"])
            done.append(e["item"])
            open_item = None
        else:
            assert open_item is not None and e["item_id"] == open_item["id"] and e["output_index"] == len(done)
            prefix = {"reasoning": "response.reasoning_summary_", "function_call": "response.function_call_arguments."}
            allowed = prefix.get(open_item["type"], ("response.content_part.", "response.output_text."))
            assert e["type"].startswith(allowed)
    assert open_item is None
    return done


def stream_events(client: httpx.Client, body: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    with client.stream("POST", "/v1/responses", json={**body, "stream": True}, **kw) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert "[DONE]" not in raw
    return parse_frames(raw)


# ------------------------------------------------------------------ input view and JSON bodies


def test_input_messages_view() -> None:
    assert responses_input_messages({"input": "q"}) == [{"role": "user", "content": "q"}]
    items = [
        {"role": "developer", "content": "be brief"},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
    ]
    assert responses_input_messages({"input": items}) == [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "ab"},
        items[2],
    ]
    assert responses_input_messages({}) == []


def test_json_echo_text_and_usage(fake: FakeUpstream, client: httpx.Client) -> None:
    r = client.post("/v1/responses", json=BODY)
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
    body = r.json()
    Response.model_validate(body)
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert body["model"] == "gpt-r" and body["error"] is None and body["incomplete_details"] is None
    (msg,) = body["output"]
    assert msg["type"] == "message" and msg["id"].startswith("msg_") and msg["role"] == "assistant"
    assert msg["status"] == "completed"
    assert msg["content"] == [{"type": "output_text", "text": "echo: hi there", "annotations": [], "logprobs": []}]
    u = body["usage"]
    assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"] and u["input_tokens"] > 0
    assert u["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert u["output_tokens_details"] == {"reasoning_tokens": 0}
    assert fake.requests[-1].path == "/v1/responses" and fake.requests[-1].json == BODY


def test_json_echoes_request_settings(client: httpx.Client) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}]
    items = [
        {"role": "system", "content": "sys"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "from parts"}]},
    ]
    req = {
        "model": "gpt-r",
        "input": items,
        "instructions": "be nice",
        "tools": tools,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "metadata": {"k": "v"},
        "temperature": 0.2,
        "top_p": 0.5,
        "store": False,
        "previous_response_id": "resp_prev",
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_object"}},
    }
    body = client.post("/v1/responses", json=req).json()
    Response.model_validate(body)
    for key in ("instructions", "tools", "tool_choice", "metadata", "temperature", "top_p", "reasoning", "text"):
        assert body[key] == req[key], key
    assert body["parallel_tool_calls"] is False and body["store"] is False
    assert body["previous_response_id"] == "resp_prev"
    assert body["output"][0]["content"][0]["text"] == "echo: from parts"
    plain = client.post("/v1/responses", json=BODY).json()
    assert (plain["tools"], plain["tool_choice"], plain["parallel_tool_calls"], plain["store"]) == (
        [],
        "auto",
        True,
        True,
    )
    assert plain["instructions"] is None and plain["metadata"] == {} and plain["previous_response_id"] is None


def test_json_tools_reasoning_cache(fake: FakeUpstream, client: httpx.Client) -> None:
    calls = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("noop", {}, id="call_fixed")]
    fake.enqueue(
        Reply(
            text="",
            reasoning="hmm",
            tool_calls=calls,
            usage=(10, 5),
            cache_read_tokens=100,
            cache_write_tokens=7,
            model="other",
        )
    )
    body = client.post("/v1/responses", json=BODY).json()
    Response.model_validate(body)
    assert [i["type"] for i in body["output"]] == ["reasoning", "function_call", "function_call"]
    reasoning, first, second = body["output"]
    assert reasoning["id"].startswith("rs_") and reasoning["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert "encrypted_content" not in reasoning
    assert first["id"].startswith("fc_") and first["call_id"].startswith("call_") and first["name"] == "get_weather"
    assert json.loads(first["arguments"]) == {"city": "Paris"} and first["status"] == "completed"
    assert (second["call_id"], second["arguments"]) == ("call_fixed", "{}")
    assert first["id"] != second["id"]
    assert body["model"] == "other" and body["status"] == "completed"
    assert body["usage"] == {
        "input_tokens": 117,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 7},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 122,
    }


def test_json_encrypted_reasoning_when_included() -> None:
    body = responses_object(Reply(text="x", reasoning="deep"), {**BODY, "include": ["reasoning.encrypted_content"]})
    assert body["output"][0]["type"] == "reasoning" and body["output"][0]["encrypted_content"]


@pytest.mark.parametrize("finish", ["length", "max_tokens"])
def test_json_incomplete(finish: str) -> None:
    body = responses_object(Reply(text="trunc", reasoning="r", finish_reason=finish), BODY)
    Response.model_validate(body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [i["status"] for i in body["output"]] == ["completed", "incomplete"]
    assert body["usage"]["output_tokens"] > 0
    assert responses_object(Reply(finish_reason="refusal"), BODY)["incomplete_details"] == {"reason": "content_filter"}
    assert responses_object(Reply(finish_reason="stop"), BODY)["status"] == "completed"


# ------------------------------------------------------------------ streams


def test_stream_text_grammar(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="Hello there world", chunks=3, usage=(4, 2), cache_read_tokens=6))
    events = stream_events(client, BODY)
    (item,) = check_grammar(events)
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Hello there world"
    assert events[3]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert events[-3]["part"]["text"] == "Hello there world"
    assert events[2]["item"]["content"] == [] and item["content"][0]["text"] == "Hello there world"
    final = events[-1]["response"]
    Response.model_validate(final)
    assert final["status"] == "completed" and final["output"] == [item] and final["model"] == "gpt-r"
    assert final["usage"]["input_tokens"] == 10 and final["usage"]["input_tokens_details"]["cached_tokens"] == 6
    assert events[0]["response"]["usage"] is None and events[0]["response"]["created_at"] == final["created_at"]


def test_stream_reasoning_and_calls(fake: FakeUpstream, client: httpx.Client) -> None:
    calls = [ToolCall("a", {"x": "long value " * 5}), ToolCall("b", {"y": [1, 2, 3]}, id="call_fixed")]
    fake.enqueue(Reply(text="Let me look.", reasoning="because reasons", tool_calls=calls, chunks=3))
    events = stream_events(client, {**BODY, "include": ["reasoning.encrypted_content"]})
    done = check_grammar(events)
    assert [i["type"] for i in done] == ["reasoning", "message", "function_call", "function_call"]
    assert events[-1]["response"]["output"] == done
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert added[0]["summary"] == [] and "encrypted_content" not in added[0] and done[0]["encrypted_content"]
    summary = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert "".join(summary) == "because reasons" and len(summary) == 3
    assert done[0]["summary"] == [{"type": "summary_text", "text": "because reasons"}]
    for call, item, add in zip(calls, done[2:], added[2:], strict=True):
        assert add["arguments"] == "" and add["call_id"] == item["call_id"] and item["status"] == "completed"
        mine = [e for e in events if e.get("item_id") == item["id"]]
        deltas = [e["delta"] for e in mine if e["type"] == "response.function_call_arguments.delta"]
        assert len(deltas) >= 2 and json.loads("".join(deltas)) == call.arguments
        assert (
            mine[-1]["type"] == "response.function_call_arguments.done" and mine[-1]["arguments"] == item["arguments"]
        )
    assert done[3]["call_id"] == "call_fixed"


def test_stream_incomplete_and_failed() -> None:
    events = frames(responses_stream(Reply(text="abcdef", finish_reason="length"), BODY))
    (item,) = check_grammar(events)
    assert item["status"] == "incomplete" and events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    events = frames(responses_stream(Reply(text="partial", stream_error="upstream died"), BODY))
    check_grammar(events)
    failed = events[-1]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "upstream died"}
    assert failed["response"]["usage"] is None
    events = frames(responses_stream(Reply(stream_error="slow down", error_type="rate_limit_exceeded"), BODY))
    assert events[-1]["response"]["error"]["code"] == "rate_limit_exceeded"


def test_stream_cut_after(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="abcdefgh", cut_after=4))
    got = ""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/v1/responses", json={**BODY, "stream": True}) as r,
    ):
        for text in r.iter_text():
            got += text
    events = parse_frames(got)
    assert [e["sequence_number"] for e in events] == [0, 1, 2, 3]
    assert "response.completed" not in got


# ------------------------------------------------------------------ errors, routing, scripting


def test_errors_use_openai_shape(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(status=429, headers={"retry-after": "2"}), Reply(status=400, text="bad input"))
    r = client.post("/v1/responses", json={**BODY, "stream": True})
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    r = client.post("/some/prefix/responses", json=BODY)
    assert r.status_code == 400 and r.json()["error"] == {
        "message": "bad input",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_value",
    }
    assert client.get("/v1/responses").json()["error"]["type"] == "invalid_request_error"
    assert [q.path for q in fake.requests] == ["/v1/responses", "/some/prefix/responses", "/v1/responses"]


def test_header_script_and_queue(fake: FakeUpstream, client: httpx.Client) -> None:
    fake.enqueue(Reply(text="queued"))
    scripted = Reply(text="per-request", tool_calls=[ToolCall("t", {"a": 1})])
    body = client.post("/v1/responses", json=BODY, headers={"x-fake-reply": scripted.header_value()}).json()
    assert [i["type"] for i in body["output"]] == ["message", "function_call"]
    assert body["output"][0]["content"][0]["text"] == "per-request"
    assert client.post("/v1/responses", json=BODY).json()["output"][0]["content"][0]["text"] == "queued"
    assert fake.requests[0].headers["x-fake-reply"] == scripted.header_value()


# ------------------------------------------------------------------ official SDK


def test_openai_sdk_responses(fake: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0)
    fake.enqueue(Reply(text="plain", cache_read_tokens=3))
    done = sdk.responses.create(model="m", input="q")
    assert done.output_text == "plain" and done.status == "completed" and done.id.startswith("resp_")
    assert done.usage is not None and done.usage.input_tokens_details.cached_tokens == 3
    assert (
        sdk.responses.create(model="m", input=[{"role": "user", "content": "echo me"}]).output_text == "echo: echo me"
    )

    calls = [ToolCall("get_weather", {"city": "Paris", "days": 3}), ToolCall("noop", {}, id="call_x")]
    fake.enqueue(Reply(text="Let me check.", reasoning="need weather", tool_calls=calls))
    tools: list[Any] = [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False},
        {"type": "function", "name": "noop", "parameters": {"type": "object"}, "strict": False},
    ]
    with sdk.responses.stream(model="m", input="weather?", tools=tools) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "Let me check." and final.output_text == "Let me check."
    fcs = [o for o in final.output if o.type == "function_call"]
    assert [(f.name, json.loads(f.arguments)) for f in fcs] == [
        ("get_weather", {"city": "Paris", "days": 3}),
        ("noop", {}),
    ]
    assert fcs[1].call_id == "call_x" and final.usage is not None and final.usage.output_tokens > 0
    assert final.output[0].type == "reasoning" and final.output[0].summary[0].text == "need weather"

    fake.enqueue(Reply(text="x", stream_error="upstream died"))
    with sdk.responses.stream(model="m", input="q") as stream:
        kinds = [e.type for e in stream]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert kinds[-1] == "response.failed"

    fake.enqueue(Reply(status=429, headers={"retry-after": "0"}))
    with pytest.raises(openai.RateLimitError):
        sdk.responses.create(model="m", input="q")
