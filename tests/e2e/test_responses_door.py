"""The Responses door (``POST /v1/responses``) driven by the openai SDK, to both upstream dialects.

Each test checks what the SDK's own parsers and stream helpers make of the answer, every streamed
event against the SDK's own event types, and what the converted request looked like at the fake
upstream (Chat Completions for ``my-gpt``, Anthropic Messages for ``my-claude``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.testing.fake_upstream import Reply, ToolCall

UPSTREAMS = pytest.mark.parametrize("model", ["my-gpt", "my-claude"])
EVENTS = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def client(world: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)


def sent(world: Any) -> dict[str, Any]:
    body: dict[str, Any] = world.fake.requests[-1].json
    return body


def raw_stream(world: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of a streamed call, each validated against the SDK's event union."""
    events: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {world.key}"}
    with httpx.stream("POST", world.url + "/v1/responses", json={**body, "stream": True}, headers=headers) as resp:
        assert resp.status_code == 200, resp.read()
        name = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                doc = json.loads(line[6:])
                assert doc["type"] == name
                EVENTS.validate_python(doc)
                events.append(doc)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


@UPSTREAMS
def test_text_answer(stack, world, model):
    world.fake.enqueue(Reply(text="Hello from upstream", usage=(12, 5)))
    resp = client(world).responses.create(model=model, input="Hi there", instructions="Be brief.")
    Response.model_validate(resp.model_dump())
    assert resp.output_text == "Hello from upstream"
    assert resp.model == model and resp.status == "completed" and resp.id.startswith("resp_")
    assert resp.usage is not None and resp.usage.input_tokens == 12 and resp.usage.output_tokens == 5
    body = sent(world)
    if model == "my-gpt":
        assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    else:
        assert body["system"] == [{"type": "text", "text": "Be brief."}]
        assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
    rows = stack.seed.usage_rows(world.tenant, expect=1)
    assert rows[0].door_dialect == "responses" and rows[0].status == 200 and rows[0].input_tokens == 12


@UPSTREAMS
def test_stream_text_grammar(world, model):
    world.fake.enqueue(Reply(text="one two three four", chunks=4))
    events = raw_stream(world, {"model": model, "input": "count"})
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.index("response.output_item.added") < kinds.index("response.content_part.added")
    assert kinds.index("response.content_part.added") < kinds.index("response.output_text.delta")
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three four"
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "one two three four"
    assert final["usage"]["output_tokens"] > 0
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1


@UPSTREAMS
def test_stream_helper_parses_a_function_call(world, model):
    world.fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_w1")]))
    with client(world).responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather" and calls[0].call_id == "call_w1"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    body = sent(world)
    if model == "my-gpt":
        assert body["tools"][0]["function"]["name"] == "get_weather"
    else:
        assert body["tools"][0]["name"] == "get_weather" and body["tools"][0]["input_schema"]["required"] == ["city"]


@UPSTREAMS
def test_tool_loop_replays_calls_and_outputs(world, model):
    world.fake.enqueue(Reply(text="It is sunny."))
    items = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_w1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_w1", "output": "sunny, 21C"},
    ]
    resp = client(world).responses.create(model=model, input=items, tools=[WEATHER])
    assert resp.output_text == "It is sunny."
    body = sent(world)
    if model == "my-gpt":
        assistant, tool = body["messages"][1], body["messages"][2]
        assert assistant["tool_calls"][0]["id"] == "call_w1"
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
        assert tool == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21C"}
    else:
        assert body["messages"][1]["content"][0] == {
            "type": "tool_use",
            "id": "call_w1",
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        result = body["messages"][2]["content"][0]
        assert result["tool_use_id"] == "call_w1" and result["content"] == "sunny, 21C"


def test_anthropic_thinking_round_trips_byte_exact(world):
    world.fake.enqueue(Reply(reasoning="Let me think about Paris.", text="Sunny."))
    first = client(world).responses.create(
        model="my-claude", input="Weather?", include=["reasoning.encrypted_content"], reasoning={"effort": "low"}
    )
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].summary[0].text == "Let me think about Paris."
    assert reasoning[0].encrypted_content
    upstream_first = world.fake.requests[-1]
    signature = base64.b64encode(hashlib.sha256(b"Let me think about Paris.").digest()).decode()
    assert upstream_first.json["thinking"]["type"] == "enabled"
    world.fake.enqueue(Reply(text="Still sunny."))
    history = [{"role": "user", "content": "Weather?"}, *[item.model_dump(exclude_none=True) for item in first.output]]
    history.append({"role": "user", "content": "And now?"})
    client(world).responses.create(model="my-claude", input=history, reasoning={"effort": "low"})
    blocks = sent(world)["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "Let me think about Paris.", "signature": signature}


def test_a_forged_reasoning_carry_never_reaches_the_upstream(world):
    world.fake.enqueue(Reply(text="ok"))
    forged = {
        "type": "reasoning",
        "id": "rs_x",
        "summary": [],
        "encrypted_content": "rlyr1.eyJrIjoidGhpbmtpbmciLCJ0IjoiIiwicyI6ImZvcmdlZCJ9.AAAAAAAAAAAAAAAAAAAAAA",
    }
    history = [
        {"role": "user", "content": "hi"},
        forged,
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "again"},
    ]
    client(world).responses.create(model="my-claude", input=history)
    assert all(b.get("type") != "thinking" for m in sent(world)["messages"] for b in m["content"])


def test_hosted_tools_dropped_or_refused(world):
    world.fake.enqueue(Reply(text="ok"))
    raw = client(world).responses.with_raw_response.create(
        model="my-gpt", input="hi", tools=[WEATHER, {"type": "web_search", "external_web_access": True}]
    )
    assert "web_search_tool_dropped" in raw.headers["relay-conversion-notes"]
    assert [t["function"]["name"] for t in sent(world)["tools"]] == ["get_weather"]
    with pytest.raises(openai.BadRequestError) as err:
        client(world).responses.create(
            model="my-gpt", input="hi", tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}]
        )
    assert "file_search" in str(err.value)


def test_unknown_model_and_bad_input_answer_in_openai_shape(world):
    with pytest.raises(openai.NotFoundError):
        client(world).responses.create(model="no-such-model", input="hi")
    resp = httpx.post(
        world.url + "/v1/responses", json={"model": "my-gpt"}, headers={"authorization": f"Bearer {world.key}"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("input:")
    resp = httpx.post(world.url + "/v1/responses", content=b"{nope", headers={"authorization": f"Bearer {world.key}"})
    assert resp.status_code == 400 and "error" in resp.json()


@UPSTREAMS
def test_upstream_error_before_and_during_the_stream(world, model):
    world.fake.enqueue(Reply(status=500, text="upstream broke"))
    with pytest.raises(openai.InternalServerError):
        client(world).responses.create(model=model, input="hi")
    world.fake.enqueue(Reply(text="partial answer", stream_error="boom"))
    events = raw_stream(world, {"model": model, "input": "hi"})
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"


@UPSTREAMS
def test_custom_and_namespace_tools_round_trip(world, model):
    tools = [
        {"type": "custom", "name": "apply_patch", "description": "Apply a patch", "format": {"type": "text"}},
        {"type": "namespace", "name": "agents", "description": "x", "tools": [{**WEATHER, "name": "spawn"}]},
    ]
    world.fake.enqueue(
        Reply(
            tool_calls=[
                ToolCall("apply_patch", {"input": "*** Begin Patch\n*** End Patch"}, id="call_p"),
                ToolCall("agents__spawn", {"city": "Oslo"}, id="call_s"),
            ]
        )
    )
    resp = client(world).responses.create(model=model, input="go", tools=tools)
    by_type = {item.type: item for item in resp.output}
    assert by_type["custom_tool_call"].input == "*** Begin Patch\n*** End Patch"
    assert by_type["custom_tool_call"].name == "apply_patch"
    call = by_type["function_call"]
    assert call.name == "spawn" and call.namespace == "agents"


@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        ("/v1/nowhere", {}, "openai"),
        ("/v1/responses/compact", {}, "openai"),
        ("/v1/nowhere", {"anthropic-version": "2023-06-01"}, "anthropic"),
        ("/v1/messages/nowhere", {}, "anthropic"),
    ],
)
def test_unknown_routes_are_a_plain_not_found(world, path, headers, shape):
    resp = httpx.post(world.url + path, json={}, headers={"authorization": f"Bearer {world.key}", **headers})
    assert resp.status_code == 404
    assert resp.headers["x-request-id"].startswith("req_")
    doc = resp.json()
    if shape == "openai":
        assert doc["error"]["code"] == "not_found" and "Unknown request URL" in doc["error"]["message"]
    else:
        assert doc["type"] == "error" and doc["error"]["type"] == "not_found_error"
        assert doc["request_id"] == resp.headers["request-id"]
    assert "model_not_found" not in resp.text


@UPSTREAMS
def test_thinking_suffix_turns_reasoning_on(world, model):
    world.fake.enqueue(Reply(text="thought it through"))
    raw = client(world).responses.with_raw_response.create(
        model=f"{model}-thinking", input="q", max_output_tokens=20000
    )
    resp = raw.parse()
    assert resp.model == f"{model}-thinking" and resp.output_text == "thought it through"
    body = sent(world)
    assert body["max_tokens"] == 20000
    if model == "my-claude":
        assert body["thinking"]["type"] == "enabled" and 1024 <= body["thinking"]["budget_tokens"] < 20000
    else:  # the fake's default profile has no reasoning control: dropped, and said so
        assert "thinking_dropped" in raw.headers["relay-conversion-notes"]
