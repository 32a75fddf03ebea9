"""The Responses door to an upstream that speaks the Responses API itself (profile ``supports_responses``).

The client's body goes through with the model renamed; the Response comes back under Relay's own
id and the public model name; ``previous_response_id`` is expanded by Relay (the upstream never
sees it), and a cut upstream stream ends with ``response.failed``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.testing.fake_upstream import Reply, ToolCall

EVENTS = TypeAdapter(ResponseStreamEvent)


@pytest.fixture
def native(stack: Any, world: Any) -> Any:
    up = stack.seed.upstream(
        world.tenant, base_url=world.fake.url + "/v1", dialect="openai", profile={"supports_responses": True}
    )
    stack.seed.model(world.tenant, up, "my-native", upstream_model="native-upstream-id", input_price=1.0)
    return openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)


def test_json_passes_through_under_relays_id(stack, world, native):
    world.fake.enqueue(Reply(text="native answer", usage=(100, 7), cache_read_tokens=60))
    resp = native.responses.create(model="my-native", input="hi", metadata={"k": "v"})
    request = world.fake.requests[-1]
    assert request.path == "/v1/responses"
    assert request.json["model"] == "native-upstream-id" and request.json["metadata"] == {"k": "v"}
    assert resp.output_text == "native answer" and resp.model == "my-native"
    assert resp.id.startswith("resp_") and resp.usage.input_tokens_details.cached_tokens == 60
    row = stack.seed.usage_rows(world.tenant, expect=1)[0]
    assert (row.door_dialect, row.input_tokens, row.cache_read_tokens, row.output_tokens) == ("responses", 100, 60, 7)
    assert native.responses.retrieve(resp.id).output_text == "native answer"


def test_stream_and_continuation(world, native):
    world.fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Rome"}, id="call_r")]))
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}]
    with native.responses.stream(model="my-native", input="Weather in Rome?", tools=tools) as stream:
        first = stream.get_final_response()
    assert first.id.startswith("resp_") and first.model == "my-native"
    call = next(item for item in first.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Rome"}
    world.fake.enqueue(Reply(text="Warm."))
    second = native.responses.create(
        model="my-native",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "25C"}],
        previous_response_id=first.id,
        tools=tools,
    )
    assert second.output_text == "Warm." and second.previous_response_id == first.id
    sent = world.fake.requests[-1].json
    assert "previous_response_id" not in sent
    assert [item.get("type", "message") for item in sent["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_cut_stream_ends_with_response_failed(world, native):
    world.fake.enqueue(Reply(text="a b c d e f", chunks=6, cut_after=5))
    events = []
    headers = {"authorization": f"Bearer {world.key}"}
    body = {"model": "my-native", "input": "hi", "stream": True}
    with httpx.stream("POST", world.url + "/v1/responses", json=body, headers=headers) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(EVENTS.validate_python(json.loads(line[6:])))
    assert events[-1].type == "response.failed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
