"""Helpers for the converter tests: deterministic ids, stream runners, grammar checks, SDK folds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from gateway.convert import (
    AnthropicGrammar,
    AnthropicStreamToOpenAI,
    OpenAIGrammar,
    OpenAIStreamToAnthropic,
    ResponseHints,
)
from gateway.protocols.sse import SSEDecoder, SSEEvent, encode_event

_A_EVENT = TypeAdapter(RawMessageStreamEvent)


def id_factory() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}{next(counter):024d}"


def o_events(chunks: Iterable[dict[str, Any] | str]) -> list[SSEEvent]:
    """Upstream O chunks as SSE events; strings are raw data (e.g. ``[DONE]``)."""
    return [SSEEvent(None, c if isinstance(c, str) else json.dumps(c)) for c in chunks]


def a_events(events: Iterable[dict[str, Any]]) -> list[SSEEvent]:
    return [SSEEvent(e["type"], json.dumps(e)) for e in events]


def run_o2a(
    chunks: Iterable[dict[str, Any] | str],
    *,
    finish: bool = True,
    hint: int = 0,
    hints: ResponseHints | None = None,
) -> tuple[list[SSEEvent], OpenAIStreamToAnthropic]:
    conv = OpenAIStreamToAnthropic(model="claude-alias", new_id=id_factory(), input_tokens_hint=hint, hints=hints)
    out: list[SSEEvent] = []
    for event in o_events(chunks):
        out.extend(conv.feed(event))
    if finish:
        out.extend(conv.finish())
    return out, conv


def run_a2o(
    events: Iterable[dict[str, Any]],
    *,
    include_usage: bool = True,
    finish: bool = True,
    hints: ResponseHints | None = None,
) -> tuple[list[SSEEvent], AnthropicStreamToOpenAI]:
    conv = AnthropicStreamToOpenAI(
        model="gpt-alias", new_id=id_factory(), created=1700000000, include_usage=include_usage, hints=hints
    )
    out: list[SSEEvent] = []
    for event in a_events(events):
        out.extend(conv.feed(event))
    if finish:
        out.extend(conv.finish())
    return out, conv


def check_a_stream(events: list[SSEEvent]) -> list[dict[str, Any]]:
    """Validate the A grammar on the wire bytes (``event:`` line present) and return payloads."""
    wire = b"".join(encode_event(e.data, e.event) for e in events)
    decoded = SSEDecoder().feed(wire)
    grammar = AnthropicGrammar()
    payloads = []
    for event in decoded:
        assert event.event is not None, "every A event needs an event: line (edge 1)"
        payload = json.loads(event.data)
        grammar.check(event.event, payload)
        payloads.append(payload)
    assert grammar.complete, f"stream ended in state {grammar.state}"
    return payloads


def sdk_message(events: list[SSEEvent]) -> Any:
    """Fold the stream with the Anthropic SDK's own accumulator (raises on grammar breaks)."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for event in events:
        if event.event in ("error", "ping"):
            continue
        parsed = _A_EVENT.validate_python(json.loads(event.data))
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def check_o_stream(events: list[SSEEvent]) -> list[dict[str, Any]]:
    grammar = OpenAIGrammar()
    chunks = []
    for event in events:
        assert event.event is None
        if event.data == "[DONE]":
            grammar.check_done()
            continue
        chunk = json.loads(event.data)
        grammar.check(chunk)
        chunks.append(chunk)
    return chunks


def sdk_completion(events: list[SSEEvent]) -> Any:
    """Fold the stream with the OpenAI SDK's accumulator."""
    state = ChatCompletionStreamState()
    for event in events:
        if event.data == "[DONE]":
            break
        state.handle_chunk(ChatCompletionChunk.model_validate(json.loads(event.data)))
    return state.get_final_completion()


def names(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def text_chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def tool_chunk(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": list(calls)}}]}


def finish_chunk(reason: str = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def usage_chunk(prompt: int = 10, completion: int = 5, cached: int = 0) -> dict[str, Any]:
    details = {"cached_tokens": cached}
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "prompt_tokens_details": details}
    return {"choices": [], "usage": usage}


ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
