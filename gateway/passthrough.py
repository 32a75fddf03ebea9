"""Same-dialect stream and body taps: rename the model, read usage, notice the end. Pure, no I/O.

They share the interface of the converters' stream transcoders (``feed`` / ``finish`` /
``fail``), so the relay has one streaming loop whether it converts or not. Events that need
no change pass through as the upstream's own text, so fields we don't model survive.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.domain import Usage
from gateway.protocols.sse import SSEEvent

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def anthropic_usage(u: Any, previous: Usage | None = None) -> Usage:
    """Anthropic usage; ``message_delta`` carries cumulative counts that override ``message_start``'s."""
    prev = previous or Usage()
    if not isinstance(u, dict):
        return prev
    return Usage(
        input_tokens=_int(u.get("input_tokens"), prev.input_tokens),
        output_tokens=_int(u.get("output_tokens"), prev.output_tokens),
        cache_read_tokens=_int(u.get("cache_read_input_tokens"), prev.cache_read_tokens),
        cache_write_tokens=_int(u.get("cache_creation_input_tokens"), prev.cache_write_tokens),
    )


def openai_usage(u: Any) -> Usage:
    """OpenAI usage, with cached prompt tokens split out of ``prompt_tokens`` (no double counting)."""
    if not isinstance(u, dict):
        return Usage()
    details = u.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens"), 0) if isinstance(details, dict) else 0
    cached = cached or _int(u.get("prompt_cache_hit_tokens"), 0)  # DeepSeek's name for it
    prompt = _int(u.get("prompt_tokens"), 0)
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=_int(u.get("completion_tokens"), 0),
        cache_read_tokens=cached,
    )


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def rename_model_in_body(body: bytes, model: str) -> tuple[bytes, dict[str, Any]]:
    """A non-streamed response with the public model name; also returns the parsed document."""
    doc = _decode(body)
    if not isinstance(doc, dict):
        raise ValueError("response is not a JSON object")
    if "model" in doc:
        doc["model"] = model
    return _encode(doc), doc


class AnthropicPassthrough:
    """Anthropic SSE to an Anthropic client."""

    def __init__(self, *, model: str) -> None:
        self._model = model
        self.usage = Usage()
        self.finished = False
        self.started = False

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        kind = ev.event
        if kind in ("message_start", "message_delta", "error") or kind is None:
            doc = _loads(ev.data)
            if doc is None:
                return self.fail("upstream sent a malformed stream event")
            kind = kind or doc.get("type")
            if kind == "message_start":
                self.started = True
                msg = doc.get("message")
                if isinstance(msg, dict):
                    msg["model"] = self._model
                    self.usage = anthropic_usage(msg.get("usage"), self.usage)
                return [SSEEvent("message_start", _encode(doc).decode())]
            if kind == "message_delta":
                self.usage = anthropic_usage(doc.get("usage"), self.usage)
            elif kind == "error":
                self.finished = True
        elif kind == "message_stop":
            self.finished = True
        return [ev]

    def finish(self) -> list[SSEEvent]:
        return [] if self.finished else self.fail("upstream stream ended before message_stop")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        self.finished = True
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return [SSEEvent("error", _encode(body).decode())]


class OpenAIPassthrough:
    """OpenAI chunks to an OpenAI client; drops the usage-only chunk when the client did not ask for it."""

    def __init__(self, *, model: str, client_wants_usage: bool) -> None:
        self._model = model
        self._wants_usage = client_wants_usage
        self.usage = Usage()
        self.finished = False
        self.started = False

    def feed(self, ev: SSEEvent) -> list[SSEEvent]:
        if ev.data.strip() == "[DONE]":
            self.finished = True
            return [SSEEvent(None, "[DONE]")]
        doc = _loads(ev.data)
        if doc is None:
            return self.fail("upstream sent a malformed stream chunk")
        if "error" in doc:
            self.finished = True
            return [SSEEvent(None, ev.data), SSEEvent(None, "[DONE]")]
        self.started = True
        if "model" in doc:
            doc["model"] = self._model
        if doc.get("usage"):
            self.usage = openai_usage(doc["usage"])
            if not self._wants_usage:
                if not doc.get("choices"):
                    return []
                doc.pop("usage")
        return [SSEEvent(None, _encode(doc).decode())]

    def finish(self) -> list[SSEEvent]:
        return [] if self.finished else self.fail("upstream stream ended before [DONE]")

    def fail(self, message: str, error_type: str = "api_error") -> list[SSEEvent]:
        self.finished = True
        body = {"error": {"message": message, "type": error_type, "code": None}}
        return [SSEEvent(None, _encode(body).decode()), SSEEvent(None, "[DONE]")]


def _loads(data: str) -> dict[str, Any] | None:
    try:
        doc = _decode(data)
    except msgspec.DecodeError:
        return None
    return doc if isinstance(doc, dict) else None
