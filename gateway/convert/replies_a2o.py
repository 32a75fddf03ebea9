"""Anthropic Message → OpenAI chat.completion (conversion.md §7).

The message is replayed as its event stream through :class:`AnthropicStreamToOpenAI` and the
chunks folded back, so names, tool indexes, finish reasons and usage follow the stream rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from gateway.convert.a_accumulate import STATUS_FOR_ERROR_TYPE
from gateway.convert.jsonargs import encode_arguments
from gateway.convert.o_accumulate import accumulate_completion
from gateway.convert.streams_a2o import AnthropicStreamToOpenAI
from gateway.convert.types import ResponseHints
from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.protocols.anthropic import MessageResponse
from gateway.protocols.sse import SSEEvent

__all__ = ["anthropic_reply_to_openai", "message_events"]


def _event(payload: dict[str, Any]) -> SSEEvent:
    return SSEEvent(str(payload["type"]), msgspec.json.encode(payload).decode())


def _block_events(index: int, block: dict[str, Any]) -> Iterator[SSEEvent]:
    kind = block.get("type")
    start = dict(block)
    delta: dict[str, Any] | None = None
    if kind == "tool_use" or kind == "server_tool_use":
        start["input"] = {}
        delta = {"type": "input_json_delta", "partial_json": encode_arguments(block.get("input"))}
    elif kind == "thinking":
        start.update(thinking="", signature="")
        delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
    elif kind == "text":
        start["text"] = ""
        delta = {"type": "text_delta", "text": block.get("text", "")}
    yield _event({"type": "content_block_start", "index": index, "content_block": start})
    if delta is not None:
        yield _event({"type": "content_block_delta", "index": index, "delta": delta})
    if kind == "thinking" and block.get("signature"):
        sig = {"type": "signature_delta", "signature": block["signature"]}
        yield _event({"type": "content_block_delta", "index": index, "delta": sig})
    yield _event({"type": "content_block_stop", "index": index})


def message_events(msg: MessageResponse) -> Iterator[SSEEvent]:
    yield _event({"type": "message_start", "message": {"usage": msg.usage or {}}})
    for index, block in enumerate(msg.content):
        yield from _block_events(index, block)
    delta = {"stop_reason": msg.stop_reason, "stop_sequence": msg.stop_sequence}
    yield _event({"type": "message_delta", "delta": delta, "usage": {}})
    yield _event({"type": "message_stop"})


def anthropic_reply_to_openai(
    body: dict[str, Any],
    *,
    model: str,
    new_id: Callable[[str], str],
    created: int,
    hints: ResponseHints | None = None,
) -> dict[str, Any]:
    if body.get("type") == "error":
        err = body.get("error") or {}
        kind = str(err.get("type") or "api_error")
        raise UpstreamError(str(err.get("message")), status_code=STATUS_FOR_ERROR_TYPE.get(kind, 502), error_type=kind)
    try:
        msg = msgspec.convert(body, MessageResponse)
    except msgspec.ValidationError as exc:
        raise UpstreamUnavailable(f"upstream returned an invalid response: {exc}") from None
    stream = AnthropicStreamToOpenAI(model=model, new_id=new_id, created=created, include_usage=True, hints=hints)
    chunks = [out for event in message_events(msg) for out in stream.feed(event)]
    completion = accumulate_completion(chunks)
    choice = completion["choices"][0]
    if msg.stop_reason == "refusal":
        choice["message"]["refusal"] = choice["message"]["content"]
    return completion
