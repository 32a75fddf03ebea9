"""Server-held Responses conversations through the openai SDK, on both backends and both upstream dialects.

``previous_response_id`` must reach the upstream as the whole conversation (the second upstream
request carries the first turn), ``store: false`` must leave nothing behind, and a response is
visible to the key that made it and to no other key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from gateway.testing.fake_upstream import Reply, ToolCall

UPSTREAMS = pytest.mark.parametrize("model", ["my-gpt", "my-claude"])
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def client(world: Any, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=world.url + "/v1", api_key=key or world.key, max_retries=0)


def texts(body: dict[str, Any]) -> list[str]:
    """Every text the upstream received, in order, whatever its dialect."""
    out: list[str] = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "text":
                out.append(block["text"])
            elif block.get("type") == "tool_result":
                out.append(str(block["content"]))
    return out


@UPSTREAMS
def test_previous_response_id_sends_the_first_turn_upstream(world, model):
    api = client(world)
    world.fake.enqueue(Reply(text="Paris is the capital."))
    first = api.responses.create(model=model, input="What is the capital of France?", instructions="Be brief.")
    world.fake.enqueue(Reply(text="About 2 million."))
    second = api.responses.create(model=model, input="And its population?", previous_response_id=first.id)
    assert second.output_text == "About 2 million." and second.previous_response_id == first.id
    body = world.fake.requests[-1].json
    assert texts(body)[-3:] == ["What is the capital of France?", "Paris is the capital.", "And its population?"]
    assert "Be brief." not in json.dumps(body)  # instructions are not inherited


@UPSTREAMS
def test_streamed_tool_turn_continues_with_its_output(world, model):
    api = client(world)
    world.fake.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_o1")]))
    with api.responses.stream(model=model, input="Weather in Oslo?", tools=[WEATHER]) as stream:
        first = stream.get_final_response()
    call = next(item for item in first.output if item.type == "function_call")
    world.fake.enqueue(Reply(text="Cold."))
    output = [{"type": "function_call_output", "call_id": call.call_id, "output": "-3C"}]
    second = api.responses.create(model=model, input=output, previous_response_id=first.id, tools=[WEATHER])
    assert second.output_text == "Cold."
    body = world.fake.requests[-1].json
    assert texts(body) == ["Weather in Oslo?", "-3C"]
    if model == "my-gpt":
        assert body["messages"][1]["tool_calls"][0]["id"] == "call_o1"
    else:
        assert body["messages"][1]["content"][0]["id"] == "call_o1"


def test_retrieve_delete_and_input_items(world):
    api = client(world)
    world.fake.enqueue(Reply(text="first answer"))
    first = api.responses.create(model="my-gpt", input="one")
    world.fake.enqueue(Reply(text="second answer"))
    second = api.responses.create(model="my-gpt", input="two", previous_response_id=first.id)
    got = api.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == "second answer"
    items = api.responses.input_items.list(second.id, order="asc")
    kinds = [(item.type, getattr(item, "role", None)) for item in items.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert all(item.id for item in items.data)
    count = api.post(
        "/responses/input_tokens",
        body={"model": "my-gpt", "input": "three", "previous_response_id": second.id},
        cast_to=dict,
    )
    assert count["object"] == "response.input_tokens" and count["input_tokens"] > 3
    api.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as err:
        api.responses.create(model="my-gpt", input="x", previous_response_id=second.id)
    assert err.value.code == "previous_response_not_found"


def test_store_false_keeps_nothing(world):
    api = client(world)
    world.fake.enqueue(Reply(text="stateless"))
    resp = api.responses.create(model="my-claude", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(resp.id)
    with pytest.raises(openai.BadRequestError) as err:
        api.responses.create(model="my-claude", input="again", previous_response_id=resp.id)
    assert err.value.code == "previous_response_not_found" and err.value.param == "previous_response_id"
    assert len(world.fake.requests) == 1


def test_another_key_cannot_see_or_continue(stack, world):
    api = client(world)
    world.fake.enqueue(Reply(text="mine"))
    resp = api.responses.create(model="my-gpt", input="secret plan")
    other = client(world, stack.seed.key(world.tenant).secret)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(resp.id)
    with pytest.raises(openai.BadRequestError):
        other.responses.create(model="my-gpt", input="x", previous_response_id=resp.id)
    assert api.responses.retrieve(resp.id).output_text == "mine"


def test_kept_reasoning_carry_survives_without_include(world):
    """The client did not ask for encrypted_content, but the held turn keeps the signed thinking for replay."""
    api = client(world)
    world.fake.enqueue(Reply(reasoning="private chain", text="answer"))
    first = api.responses.create(model="my-claude", input="q", reasoning={"effort": "low"})
    assert all(getattr(item, "encrypted_content", None) is None for item in first.output)
    world.fake.enqueue(Reply(text="next"))
    api.responses.create(model="my-claude", input="q2", previous_response_id=first.id, reasoning={"effort": "low"})
    assistant = world.fake.requests[-1].json["messages"][1]
    assert assistant["content"][0]["type"] == "thinking" and assistant["content"][0]["thinking"] == "private chain"


def test_held_conversations_are_counted_in_relay_usage(stack, world):
    world.fake.enqueue(Reply(text="kept"))
    client(world).responses.create(model="my-gpt", input="remember this")
    env = {
        **os.environ,
        "RELAY_DATABASE_URL": stack.settings.database_url,
        "RELAY_SECRET_KEY": stack.settings.secret_key,
    }
    args = [sys.executable, "-m", "gateway", "usage", "--tenant", world.tenant.name, "--json"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    held = json.loads(out)["held_conversations"]
    assert held["turns"] == 1 and held["bytes"] > len("remember this")
    text = subprocess.run(args[:-1], capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert "held conversations: 1 turns" in text


def test_a_continuation_costs_one_indexed_read(stack, world):
    """Counted at the gateway's engine: one primary-key SELECT to continue; each turn written behind by one INSERT."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "conversation_turns" in statement:
            seen.append(statement.split()[0].upper())

    def settle(expected: list[str]) -> None:
        deadline = time.monotonic() + 5
        while seen != expected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == expected

    engine = stack.gateway.services.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        api = client(world)
        world.fake.enqueue(Reply(text="one"))
        first = api.responses.create(model="my-gpt", input="first")
        settle(["INSERT"])  # written behind, off the response path
        seen.clear()
        world.fake.enqueue(Reply(text="two"))
        api.responses.create(model="my-gpt", input="second", previous_response_id=first.id)
        settle(["SELECT", "INSERT"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_a_turn_answered_by_one_gateway_continues_on_another(stack, world):
    """Two gateways on one database: the second finds the turn the first kept, though it is written behind."""
    from support import GatewayServer

    other = GatewayServer(stack.settings).start()
    try:
        world.fake.enqueue(Reply(text="from the first gateway"))
        first = client(world).responses.create(model="my-claude", input="hello")
        world.fake.enqueue(Reply(text="from the second"))
        api = openai.OpenAI(base_url=other.url + "/v1", api_key=world.key, max_retries=0)
        second = api.responses.create(model="my-claude", input="again", previous_response_id=first.id)
        assert second.output_text == "from the second"
        assert "from the first gateway" in json.dumps(world.fake.requests[-1].json)
    finally:
        other.stop()
