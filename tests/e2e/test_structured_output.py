"""Structured output through converted paths (issue 14): to an upstream without ``response_format:
json_schema`` Relay forces a ``json_output`` function whose arguments are the answer, so the JSON has the
schema's shape; the client reads it as plain text (Anthropic) or ``output_text`` (Responses)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pydantic

from gateway.testing.fake_upstream import Reply, ToolCall

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}
ANSWER = {"city": "Oslo", "temperature": -3}


class Weather(pydantic.BaseModel):
    city: str
    temperature: float


def forced(world: Any) -> dict[str, Any]:
    body: dict[str, Any] = world.fake.requests[-1].json
    assert body["tool_choice"] == {"type": "function", "function": {"name": "json_output"}}
    assert body["tools"][0]["function"]["parameters"]["required"] == ["city", "temperature"]
    return body


def test_anthropic_output_format_to_a_chat_upstream(world):
    world.fake.enqueue(Reply(tool_calls=[ToolCall(name="json_output", arguments=ANSWER)]))
    api = anthropic.Anthropic(base_url=world.url, api_key=world.key, max_retries=0)
    msg = api.messages.create(
        model="my-gpt",
        max_tokens=200,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    )
    forced(world)
    assert [b.type for b in msg.content] == ["text"] and msg.stop_reason == "end_turn"
    assert json.loads(msg.content[0].text) == ANSWER


def test_responses_parse_and_stream_to_a_chat_upstream(world):
    api = openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)
    world.fake.enqueue(Reply(tool_calls=[ToolCall(name="json_output", arguments=ANSWER)]))
    parsed = api.responses.parse(model="my-gpt", input="Weather in Oslo?", text_format=Weather)
    forced(world)
    assert parsed.output_parsed == Weather(city="Oslo", temperature=-3)
    world.fake.enqueue(Reply(tool_calls=[ToolCall(name="json_output", arguments=ANSWER)], chunks=5))
    with api.responses.stream(model="my-gpt", input="Again", text_format=Weather) as stream:
        final = stream.get_final_response()
    assert forced(world)["stream"] is True
    assert final.output_parsed == Weather(city="Oslo", temperature=-3)
    assert [item.type for item in final.output] == ["message"]
