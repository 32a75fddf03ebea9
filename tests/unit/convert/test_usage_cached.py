"""Cached-token usage of every provider shape, in JSON replies and stream chunks, into :class:`Usage`.

The issue's case throughout: 1000 prompt tokens of which 800 came from the cache. Through the
Anthropic door that is ``input_tokens=200, cache_read_input_tokens=800`` (Anthropic excludes cache
reads from ``input_tokens``); through the OpenAI door ``prompt_tokens=1000`` with
``prompt_tokens_details.cached_tokens=800`` (OpenAI includes them).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from convert_streamkit import (
    ROLE,
    check_a_stream,
    check_o_stream,
    finish_chunk,
    id_factory,
    run_a2o,
    run_o2a,
    text_chunk,
)

from gateway.convert import anthropic_reply_to_openai, openai_reply_to_anthropic
from gateway.convert.usage import usage_from_anthropic, usage_from_openai, usage_from_responses, usage_to_anthropic
from gateway.domain import Usage
from gateway.passthrough import AnthropicPassthrough, OpenAIPassthrough, ResponsesPassthrough
from gateway.protocols.sse import SSEEvent

CACHED = Usage(input_tokens=200, output_tokens=20, cache_read_tokens=800)
"""1000 prompt tokens, 800 of them cached, 20 generated."""

# The usage objects as each provider sends them for that request.
OPENAI = {
    "prompt_tokens": 1000,
    "completion_tokens": 20,
    "total_tokens": 1020,
    "prompt_tokens_details": {"cached_tokens": 800, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
DEEPSEEK = {
    "prompt_tokens": 1000,
    "completion_tokens": 20,
    "total_tokens": 1020,
    "prompt_cache_hit_tokens": 800,
    "prompt_cache_miss_tokens": 200,
}
DEEPSEEK_BOTH = {**DEEPSEEK, "prompt_tokens_details": {"cached_tokens": 800}}
"""DeepSeek's current replies carry OpenAI's field too: the same tokens, counted once."""
DEEPSEEK_NO_TOTAL = {"completion_tokens": 20, "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200}
KIMI = {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020, "cached_tokens": 800}
ZERO_DETAILS_KIMI = {**KIMI, "prompt_tokens_details": {"cached_tokens": 0}}
"""An OpenAI-compatible layer in front of Kimi that fills OpenAI's field with 0 must not hide Kimi's."""

SHAPES = {
    "openai": OPENAI,
    "deepseek": DEEPSEEK,
    "deepseek+openai": DEEPSEEK_BOTH,
    "deepseek-without-prompt_tokens": DEEPSEEK_NO_TOTAL,
    "kimi": KIMI,
    "kimi-behind-a-proxy": ZERO_DETAILS_KIMI,
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_each_openai_compatible_shape_reads_as_200_uncached_and_800_cached(shape: dict[str, Any]) -> None:
    assert usage_from_openai(shape) == CACHED


def test_cache_writes_in_openai_usage_are_taken_out_of_prompt_tokens() -> None:
    openrouter = {"prompt_tokens": 1000, "completion_tokens": 20, "prompt_tokens_details": {"cache_write_tokens": 300}}
    assert usage_from_openai(openrouter) == Usage(700, 20, 0, 300)
    proxy = {
        "prompt_tokens": 1000,
        "completion_tokens": 20,
        "cache_read_input_tokens": 800,
        "cache_creation_input_tokens": 100,
    }
    assert usage_from_openai(proxy) == Usage(100, 20, 800, 100)


def test_anthropic_usage_already_excludes_cache_reads() -> None:
    raw = {"input_tokens": 200, "output_tokens": 20, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0}
    assert usage_from_anthropic(raw) == CACHED
    assert usage_from_anthropic({**raw, "cache_creation_input_tokens": 50}) == Usage(200, 20, 800, 50)


def test_responses_usage_includes_cached_input_in_input_tokens() -> None:
    raw = {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 800},
        "output_tokens": 20,
        "total_tokens": 1020,
    }
    assert usage_from_responses(raw) == CACHED
    assert usage_from_responses({**raw, "input_tokens_details": None}) == Usage(1000, 20, 0, 0)
    assert usage_from_responses(None) == Usage()


# --- JSON replies across the doors ---


def _completion(usage: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": "hi"}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": "up", "choices": [choice], "usage": usage}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_anthropic_door_json_reply_keeps_anthropic_semantics(shape: dict[str, Any]) -> None:
    message = openai_reply_to_anthropic(_completion(shape), model="m", new_id=id_factory())
    assert message["usage"]["input_tokens"] == 200
    assert message["usage"]["cache_read_input_tokens"] == 800
    assert message["usage"]["output_tokens"] == 20


def test_openai_door_json_reply_from_anthropic_includes_cached_tokens_in_prompt_tokens() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "up",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": usage_to_anthropic(CACHED),
    }
    doc = anthropic_reply_to_openai(body, model="m", new_id=id_factory(), created=1)
    assert doc["usage"]["prompt_tokens"] == 1000
    assert doc["usage"]["prompt_tokens_details"]["cached_tokens"] == 800
    assert doc["usage"]["completion_tokens"] == 20


# --- streams across the doors ---


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_anthropic_door_stream_from_openai_chunks(shape: dict[str, Any]) -> None:
    usage_only = {"choices": [], "usage": shape}
    out, conv = run_o2a([ROLE, text_chunk("hi"), finish_chunk(), usage_only, "[DONE]"])
    final = [p for p in check_a_stream(out) if p["type"] == "message_delta"][-1]
    assert final["usage"]["input_tokens"] == 200 and final["usage"]["cache_read_input_tokens"] == 800
    assert conv.usage == CACHED


def test_kimi_stream_usage_inside_the_last_choice_is_read() -> None:
    """Kimi puts the usage of a stream in the finishing choice, with its top-level ``cached_tokens``."""
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": KIMI}]}
    out, conv = run_o2a([ROLE, text_chunk("hi"), last, "[DONE]"])
    final = [p for p in check_a_stream(out) if p["type"] == "message_delta"][-1]
    assert final["usage"]["cache_read_input_tokens"] == 800 and final["usage"]["input_tokens"] == 200
    assert conv.usage == CACHED


def test_openai_door_stream_from_anthropic_events() -> None:
    start_usage = {"input_tokens": 200, "output_tokens": 1, "cache_read_input_tokens": 800}
    events = [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [],
                                              "model": "up", "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]  # fmt: skip
    out, conv = run_a2o(events)
    usage = [c["usage"] for c in check_o_stream(out) if c.get("usage")][-1]
    assert usage["prompt_tokens"] == 1000 and usage["prompt_tokens_details"]["cached_tokens"] == 800
    assert conv.usage == CACHED


# --- same-dialect taps (passthrough) ---


def _sse(event: str | None, doc: dict[str, Any]) -> SSEEvent:
    return SSEEvent(event, json.dumps(doc))


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_openai_passthrough_tap_reads_every_shape(shape: dict[str, Any]) -> None:
    tap = OpenAIPassthrough(model="m", client_wants_usage=True)
    tap.feed(_sse(None, text_chunk("hi")))
    relayed = tap.feed(_sse(None, {"choices": [], "usage": shape}))
    assert tap.usage == CACHED
    assert json.loads(relayed[0].data)["usage"] == shape  # the client still gets the provider's own fields


def test_anthropic_passthrough_tap_merges_message_delta_into_message_start() -> None:
    tap = AnthropicPassthrough(model="m")
    start = {"input_tokens": 200, "output_tokens": 1, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0}
    tap.feed(_sse("message_start", {"type": "message_start", "message": {"model": "up", "usage": start}}))
    tap.feed(_sse("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 20}}))
    assert tap.usage == CACHED


def test_responses_passthrough_tap_reads_cached_input() -> None:
    tap = ResponsesPassthrough(model="m", response_id="resp_1", previous_response_id=None)
    usage = {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 800}, "output_tokens": 20}
    tap.feed(
        _sse("response.completed", {"type": "response.completed", "response": {"status": "completed", "usage": usage}})
    )
    assert tap.usage == CACHED
