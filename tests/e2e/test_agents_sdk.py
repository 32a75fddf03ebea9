"""The real OpenAI Agents SDK (``openai-agents``) against the Responses door, to both upstream dialects.

The agent is the SDK's default one: ``OpenAIProvider`` picks the Responses model, so every model call
is a ``POST /v1/responses`` to Relay, which converts it to Chat Completions (``my-gpt``) or Anthropic
Messages (``my-claude``) at the fake upstream. Tracing is switched off with ``set_tracing_disabled``;
each test checks that no span was produced and that nothing looked up ``api.openai.com`` (the trace
exporter's host), even after a forced flush of the trace provider.

The SDK is async. Each test drives it with ``asyncio.run`` on a fresh loop, as the other sync tests
here do. ``Runner.run_sync`` is not used: it reuses the thread's current event loop, which can be
pytest-asyncio's session loop, and it then runs ``shutdown_asyncgens`` on that loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import pytest
from agents import (
    Agent,
    OpenAIProvider,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    RunResult,
    RunResultStreaming,
    add_trace_processor,
    function_tool,
    set_tracing_disabled,
)
from agents.tracing import Span, Trace, TracingProcessor, get_trace_provider

from gateway.testing.fake_upstream import Reply, ToolCall

UPSTREAMS = pytest.mark.parametrize("model", ["my-gpt", "my-claude"])
TRACE_HOST = "api.openai.com"
QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."


class SpanRecorder(TracingProcessor):
    """Every trace and span the SDK hands to its processors; with tracing disabled there must be none."""

    def __init__(self) -> None:
        self.items: list[Trace | Span[Any]] = []

    def on_trace_start(self, trace: Trace) -> None:
        self.items.append(trace)

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        self.items.append(span)

    def on_span_end(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


_SPANS = SpanRecorder()
add_trace_processor(_SPANS)  # beside the SDK's own exporter, which stays in place


@dataclass
class Harness:
    """One agent on Relay, with what its tool ran with and what Relay's door received."""

    world: Any
    model: str
    tool_calls: list[str] = field(default_factory=list)
    door: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, JSON body) sent to Relay

    def agent(self) -> Agent[Any]:
        calls = self.tool_calls

        @function_tool
        def get_weather(city: str) -> str:
            """The current weather in a city."""
            calls.append(city)
            return f"sunny, 21C in {city}"

        return Agent(name="weather", instructions="Answer weather questions.", tools=[get_weather], model=self.model)

    def client(self) -> openai.AsyncOpenAI:
        async def on_request(request: httpx2.Request) -> None:
            self.door.append((request.url.path, json.loads(request.content)))

        http = httpx2.AsyncClient(event_hooks={"request": [on_request]})
        return openai.AsyncOpenAI(
            base_url=self.world.url + "/v1", api_key=self.world.key, max_retries=0, http_client=http
        )

    def bodies(self) -> list[dict[str, Any]]:
        assert [path for path, _ in self.door] == ["/v1/responses"] * len(self.door)
        return [body for _, body in self.door]


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every host name looked up while the test runs (any thread), with tracing disabled and an API key
    in the environment, so that a trace export, if one were attempted, would really try to connect."""
    set_tracing_disabled(True)  # left disabled: no later test wants spans sent anywhere
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-never-leave-this-host")
    _SPANS.items.clear()
    hosts: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        hosts.append(host.decode() if isinstance(host, bytes) else str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    yield hosts
    get_trace_provider().force_flush()
    assert TRACE_HOST not in hosts
    assert _SPANS.items == []


@pytest.fixture
def harness(world: Any, model: str, resolved: list[str]) -> Harness:
    return Harness(world=world, model=model)


async def _run(h: Harness, input: str, **kwargs: Any) -> RunResult:
    async with h.client() as client:
        provider = OpenAIProvider(openai_client=client)
        assert isinstance(provider.get_model(h.model), OpenAIResponsesModel)  # the default: Responses, not chat
        return await Runner.run(h.agent(), input, run_config=RunConfig(model_provider=provider), **kwargs)


async def _run_streamed(h: Harness, input: str) -> tuple[RunResultStreaming, list[Any]]:
    async with h.client() as client:
        result = Runner.run_streamed(
            h.agent(), input, run_config=RunConfig(model_provider=OpenAIProvider(openai_client=client))
        )
        events = [event async for event in result.stream_events()]
        return result, events


def script_tool_then_answer(world: Any, *more: Reply) -> None:
    world.fake.enqueue(
        Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_w1")]), Reply(text=ANSWER), *more
    )


def texts(body: dict[str, Any]) -> list[str]:
    """Every text and tool result the upstream received, in order, whatever its dialect."""
    out: list[str] = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "text":
                out.append(block["text"])
            elif block.get("type") == "tool_result":
                result = block["content"]
                out.extend([b["text"] for b in result] if isinstance(result, list) else [str(result)])
    return out


def assert_tool_result_upstream(body: dict[str, Any], model: str) -> None:
    """The upstream request after the tool ran pairs the call with its output."""
    if model == "my-gpt":
        call = next(m for m in body["messages"] if m.get("tool_calls"))
        assert call["tool_calls"][0]["id"] == "call_w1"
        assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
        tool = next(m for m in body["messages"] if m["role"] == "tool")
        assert tool["tool_call_id"] == "call_w1" and tool["content"] == "sunny, 21C in Paris"
    else:
        blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
        use = next(b for b in blocks if b["type"] == "tool_use")
        assert use["id"] == "call_w1" and use["input"] == {"city": "Paris"}
        result = next(b for b in blocks if b["type"] == "tool_result")
        assert result["tool_use_id"] == "call_w1"
        assert "sunny, 21C in Paris" in texts({"messages": [{"content": [result]}]})


@UPSTREAMS
def test_default_agent_runs_a_tool_through_the_responses_door(stack, harness, model):
    world = harness.world
    script_tool_then_answer(world)
    result = asyncio.run(_run(harness, QUESTION))
    assert result.final_output == ANSWER
    assert harness.tool_calls == ["Paris"]
    assert all(r.response_id and r.response_id.startswith("resp_") for r in result.raw_responses)

    first, second = harness.bodies()
    assert first["model"] == model and first["instructions"] == "Answer weather questions."
    assert [t["name"] for t in first["tools"]] == ["get_weather"]
    assert "previous_response_id" not in first and "previous_response_id" not in second
    call = next(i for i in second["input"] if i.get("type") == "function_call")
    output = next(i for i in second["input"] if i.get("type") == "function_call_output")
    assert call["call_id"] == output["call_id"] == "call_w1" and json.loads(call["arguments"]) == {"city": "Paris"}

    upstream = world.fake.requests
    assert len(upstream) == 2
    suffix = "/chat/completions" if model == "my-gpt" else "/messages"
    assert all(r.path.endswith(suffix) for r in upstream)
    assert texts(upstream[0].json)[-1] == QUESTION
    assert_tool_result_upstream(upstream[1].json, model)
    rows = stack.seed.usage_rows(world.tenant, expect=2)
    assert [(r.door_dialect, r.status) for r in rows] == [("responses", 200)] * 2


@UPSTREAMS
def test_chained_runs_send_previous_response_id_and_relay_expands_it(harness, model):
    world = harness.world
    script_tool_then_answer(world, Reply(text="Rain tomorrow."))
    first = asyncio.run(_run(harness, QUESTION, auto_previous_response_id=True))
    assert first.final_output == ANSWER and harness.tool_calls == ["Paris"]
    second = asyncio.run(_run(harness, "And tomorrow?", previous_response_id=first.last_response_id))
    assert second.final_output == "Rain tomorrow."

    one, two, three = harness.bodies()
    assert "previous_response_id" not in one
    assert two["previous_response_id"] == first.raw_responses[0].response_id
    assert [i["type"] for i in two["input"]] == ["function_call_output"]  # only the new item
    assert three["previous_response_id"] == first.last_response_id
    assert [i.get("content") for i in three["input"]] == ["And tomorrow?"]

    upstream = world.fake.requests
    assert len(upstream) == 3
    assert QUESTION in texts(upstream[1].json)  # Relay expanded the chain to the first turn
    assert_tool_result_upstream(upstream[1].json, model)
    assert texts(upstream[2].json)[-2:] == [ANSWER, "And tomorrow?"]
    assert QUESTION in texts(upstream[2].json)
    assert all(json.dumps(r.json).count("Answer weather questions.") == 1 for r in upstream)  # system, once
    assert_tool_result_upstream(upstream[2].json, model)


@UPSTREAMS
def test_streamed_run_with_a_tool(harness, model):
    world = harness.world
    script_tool_then_answer(world)
    result, events = asyncio.run(_run_streamed(harness, QUESTION))
    assert result.is_complete and result.final_output == ANSWER
    assert harness.tool_calls == ["Paris"]
    assert all(body.get("stream") is True for body in harness.bodies()) and len(harness.door) == 2

    raw = [e.data for e in events if e.type == "raw_response_event"]
    assert "".join(d.delta for d in raw if d.type == "response.output_text.delta") == ANSWER
    assert sum(d.type == "response.completed" for d in raw) == 2
    items = [e.item.type for e in events if e.type == "run_item_stream_event"]
    assert items == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert [r.json.get("stream") for r in world.fake.requests] == [True, True]
    assert_tool_result_upstream(world.fake.requests[1].json, model)
