"""Helpers for the Responses-door converter tests: request conversion, stream runners, checks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, get_args

from convert_streamkit import a_events, id_factory, o_events
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.convert import (
    AnthropicStreamToResponses,
    CapabilityProfile,
    Chained,
    OpenAIStreamToAnthropic,
    ResponseHints,
    ResponsesConverted,
    envelope,
    responses_request_to_anthropic,
)
from gateway.convert.grammar_responses import ResponsesGrammar
from gateway.convert.requests_r2x import for_anthropic, for_openai
from gateway.convert.types import Converted
from gateway.protocols.sse import SSEDecoder, SSEEvent, encode_event

KEY = b"relay-test-envelope-key-32-bytes"
EVENTS = TypeAdapter(ResponseStreamEvent)
EVENT_CLASSES = {
    get_args(cls.model_fields["type"].annotation)[0]: cls for cls in get_args(get_args(ResponseStreamEvent)[0])
}
LIFECYCLE = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed"}
)
ANTHROPIC = CapabilityProfile.for_dialect("anthropic")
OPENAI = CapabilityProfile.for_dialect("openai")
DEEPSEEK = CapabilityProfile.for_dialect("openai", {"reasoning_dialect": "deepseek"})


def carry(token: Any) -> dict[str, str] | None:
    return envelope.unseal(KEY, token)


def seal(c: dict[str, str]) -> str:
    return envelope.seal(KEY, c)


def neutral(body: dict[str, Any]) -> ResponsesConverted:
    return responses_request_to_anthropic(body, carry=carry)


def to_anthropic(body: dict[str, Any], profile: CapabilityProfile = ANTHROPIC) -> Converted:
    return for_anthropic(neutral(body), upstream_model="claude-up", profile=profile)


def to_openai(body: dict[str, Any], profile: CapabilityProfile = OPENAI) -> Converted:
    return for_openai(neutral(body), upstream_model="gpt-up", profile=profile)


def writer(
    shape: ResponsesConverted | None = None, *, json_tool: str | None = None, response_id: str = "resp_test"
) -> AnthropicStreamToResponses:
    return AnthropicStreamToResponses(
        model="relay-model",
        response_id=response_id,
        new_id=id_factory(),
        created=1700000000,
        shape=shape if shape is not None else ResponsesConverted(body={}),
        seal=seal,
        json_tool=json_tool,
    )


def run_a2r(
    events: Iterable[dict[str, Any]],
    shape: ResponsesConverted | None = None,
    *,
    json_tool: str | None = None,
    finish: bool = True,
) -> tuple[list[SSEEvent], AnthropicStreamToResponses]:
    conv = writer(shape, json_tool=json_tool)
    out: list[SSEEvent] = []
    for event in a_events(events):
        out.extend(conv.feed(event))
    if finish:
        out.extend(conv.finish())
    return out, conv


def run_chained(
    chunks: Iterable[dict[str, Any] | str],
    shape: ResponsesConverted | None = None,
    *,
    hints: ResponseHints | None = None,
    finish: bool = True,
) -> tuple[list[SSEEvent], Chained]:
    hints = hints or ResponseHints()
    first = OpenAIStreamToAnthropic(model="relay-model", new_id=id_factory(), hints=hints)
    conv = Chained(first, writer(shape, json_tool=hints.json_tool))
    out: list[SSEEvent] = []
    for event in o_events(chunks):
        out.extend(conv.feed(event))
    if finish:
        out.extend(conv.finish())
    return out, conv


def check_r_stream(events: list[SSEEvent], *, sdk: bool = True) -> list[dict[str, Any]]:
    """Validate a Responses stream on the wire bytes and return its payloads.

    Every event: ``event:`` line equal to the payload's ``type``, a fresh :class:`ResponsesGrammar`
    accepts it, ``sequence_number`` counts from 0, one response id on every lifecycle event, exactly
    one terminal event at the end. ``sdk``: every event also validates against the openai SDK's
    event union and the SDK's own stream accumulator folds the stream without complaint.
    """
    wire = b"".join(encode_event(e.data, e.event) for e in events)
    decoded = SSEDecoder().feed(wire)
    grammar = ResponsesGrammar()
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    payloads: list[dict[str, Any]] = []
    for event in decoded:
        payload = json.loads(event.data)
        assert event.event == payload["type"]
        grammar.check(payload)
        if sdk:
            EVENT_CLASSES[payload["type"]].model_validate(payload)  # readable errors first
            state.handle_event(EVENTS.validate_python(payload))
        payloads.append(payload)
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    lifecycle = [p for p in payloads if p["type"] in LIFECYCLE]
    assert len({p["response"]["id"] for p in lifecycle}) == 1
    assert grammar.state == "ended", "the stream must end with a terminal event"
    terminal = [p for p in payloads if p["type"] in ("response.completed", "response.incomplete", "response.failed")]
    assert len(terminal) == 1 and terminal[0] is payloads[-1]
    if sdk:
        Response.model_validate(payloads[-1]["response"])
    return payloads


def names(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def final(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    response: dict[str, Any] = payloads[-1]["response"]
    return response


# -- Anthropic stream builders ------------------------------------------------------------------


def message_start(input_tokens: int = 10, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": 1,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }
    message = {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [],
        "stop_reason": None,
        "usage": usage,
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_end(stop_reason: str = "end_turn", output_tokens: int = 7) -> list[dict[str, Any]]:
    delta = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    return [{**delta, "usage": {"output_tokens": output_tokens}}, {"type": "message_stop"}]


def text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    deltas = [block_delta(index, {"type": "text_delta", "text": p}) for p in pieces]
    return [block_start(index, {"type": "text", "text": ""}), *deltas, block_stop(index)]


def thinking_block(index: int, text: str, signature: str) -> list[dict[str, Any]]:
    return [
        block_start(index, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(index, {"type": "thinking_delta", "thinking": text}),
        block_delta(index, {"type": "signature_delta", "signature": signature}),
        block_stop(index),
    ]


def tool_block(index: int, tool_id: str, name: str, *fragments: str) -> list[dict[str, Any]]:
    deltas = [block_delta(index, {"type": "input_json_delta", "partial_json": f}) for f in fragments]
    start = block_start(index, {"type": "tool_use", "id": tool_id, "name": name, "input": {}})
    return [start, *deltas, block_stop(index)]
