"""Plans built without I/O: what the relay sends and how it reads the reply."""

from __future__ import annotations

import msgspec

from gateway.domain import Dialect, Route, Upstream
from gateway.plans import make_plan
from gateway.protocols.sse import SSEEvent

CHAT_UPSTREAM = Upstream(id="u1", name="chat", tenant_id="t1", dialect=Dialect.OPENAI, base_url="http://up/v1")
ROUTE = Route(public_name="my-gpt", model_id="m1", upstream=CHAT_UPSTREAM, upstream_model="gpt-up")


def chunk(delta: dict, finish: str | None = None) -> SSEEvent:
    doc = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return SSEEvent(None, msgspec.json.encode(doc).decode())


def test_a_responses_stream_from_a_chat_upstream_without_usage_estimates_its_input():
    """The input is counted only when the upstream reports no usage (it costs ~0.3 ms on a Codex-sized
    request), and then it still is: never a zero-input row."""
    long_input = "Tell me about the weather in Oslo in great detail. " * 200
    body = {"model": "my-gpt", "input": long_input, "stream": True}
    tap = make_plan(Dialect.RESPONSES, ROUTE, body, {}, ()).make_tap()
    for ev in [chunk({"role": "assistant", "content": "Cold."}), chunk({}, "stop"), SSEEvent(None, "[DONE]")]:
        tap.feed(ev)
    tap.finish()
    assert tap.finished and tap.usage.estimated
    assert tap.usage.input_tokens > 1000 and tap.usage.output_tokens >= 1


def test_reported_usage_wins_over_the_estimate():
    body = {"model": "my-gpt", "input": "hi", "stream": True}
    tap = make_plan(Dialect.RESPONSES, ROUTE, body, {}, ()).make_tap()
    usage = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    events = [chunk({"role": "assistant", "content": "Hello."}), chunk({}, "stop")]
    events.append(SSEEvent(None, msgspec.json.encode({"id": "c", "choices": [], "usage": usage}).decode()))
    for ev in [*events, SSEEvent(None, "[DONE]")]:
        tap.feed(ev)
    assert (tap.usage.input_tokens, tap.usage.output_tokens, tap.usage.estimated) == (42, 7, False)
