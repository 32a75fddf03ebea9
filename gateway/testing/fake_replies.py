"""Scripted replies and the wire bodies the fake upstream builds from them (both dialects).

Pure functions: a :class:`Reply` plus the parsed request body in, JSON-ready dicts or framed SSE
events out. Token counts are deterministic estimates (about four bytes per token) unless the
reply pins them with ``usage``.

Usage convention: ``Reply.usage = (input, output)`` where ``input`` counts the *uncached* input
tokens. Anthropic reports it as ``input_tokens`` beside ``cache_read_input_tokens`` /
``cache_creation_input_tokens``; OpenAI's ``prompt_tokens`` is ``input + cache_read + cache_write``
with ``prompt_tokens_details.cached_tokens = cache_read``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field, fields
from typing import Any

import msgspec

__all__ = [
    "Reply",
    "ToolCall",
    "anthropic_error_body",
    "anthropic_message",
    "anthropic_stream",
    "estimate_input_tokens",
    "openai_completion",
    "openai_error_body",
    "openai_stream",
    "reply_from_json",
]

JSON = dict[str, Any]


@dataclass
class ToolCall:
    """One tool call the fake model makes; ``arguments`` is the JSON object of arguments."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass
class Reply:
    """What the fake upstream answers to one completion request (see the module docstring)."""

    text: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    chunks: int = 4
    usage: tuple[int, int] | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    status: int = 200
    body: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cut_after: int | None = None
    stream_error: str | None = None
    error_type: str | None = None
    finish_reason: str | None = None
    model: str | None = None

    def header_value(self) -> str:
        """This reply as the JSON an ``x-fake-reply`` request header carries."""
        out: JSON = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "tool_calls":
                value = [{"name": t.name, "arguments": t.arguments, "id": t.id} for t in value]
            elif f.name == "body" and value is not None:
                value = value.decode()
            out[f.name] = value
        return msgspec.json.encode(out).decode()


def reply_from_json(raw: str | bytes) -> Reply:
    """Parse an ``x-fake-reply`` header value (a JSON object of :class:`Reply` fields)."""
    data = msgspec.json.decode(raw)
    if not isinstance(data, dict):
        raise ValueError("x-fake-reply must be a JSON object")
    known = {f.name for f in fields(Reply)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown Reply fields: {sorted(unknown)}")
    data["tool_calls"] = [
        ToolCall(t["name"], t.get("arguments") or {}, t.get("id")) for t in data.get("tool_calls") or []
    ]
    if data.get("usage") is not None:
        data["usage"] = (int(data["usage"][0]), int(data["usage"][1]))
    if isinstance(data.get("body"), str):
        data["body"] = data["body"].encode()
    return Reply(**data)


# ---------------------------------------------------------------- helpers


def _encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


def _rand(n: int = 24) -> str:
    return secrets.token_hex(n // 2)


def split_pieces(text: str, n: int) -> list[str]:
    """Split ``text`` into at most ``n`` non-empty, nearly equal consecutive pieces."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    pieces: list[str] = []
    pos = 0
    for i in range(n):
        end = pos + size + (1 if i < extra else 0)
        pieces.append(text[pos:end])
        pos = end
    return pieces


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def last_user_text(body: JSON) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def estimate_input_tokens(body: JSON) -> int:
    """A deterministic input estimate: bytes of system + messages + tools JSON over four."""
    relevant = {k: body.get(k) for k in ("system", "messages", "tools")}
    return len(_encode(relevant)) // 4 + 1


def _resolved_text(reply: Reply, body: JSON) -> str:
    if reply.text is not None:
        return reply.text
    return "" if reply.tool_calls else f"echo: {last_user_text(body)}"


@dataclass
class _Plan:
    """A reply resolved against one request: everything both dialects need."""

    model: str
    text: str
    reasoning: str
    calls: list[tuple[str, str, str]]  # (id, name, arguments JSON)
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int
    finish: str | None
    chunks: int


def _plan(reply: Reply, body: JSON, id_prefix: str) -> _Plan:
    text = _resolved_text(reply, body)
    reasoning = reply.reasoning or ""
    calls = [(t.id or f"{id_prefix}{_rand()}", t.name, _encode(t.arguments).decode()) for t in reply.tool_calls]
    if reply.usage is not None:
        inp, out = reply.usage
    else:
        inp = estimate_input_tokens(body)
        out = max(1, (len(text) + len(reasoning) + sum(len(c[2]) for c in calls)) // 4)
    return _Plan(
        model=reply.model or str(body.get("model") or "fake-model"),
        text=text,
        reasoning=reasoning,
        calls=calls,
        input_tokens=inp,
        output_tokens=out,
        cache_read=reply.cache_read_tokens,
        cache_write=reply.cache_write_tokens,
        finish=reply.finish_reason,
        chunks=max(1, reply.chunks),
    )


# ---------------------------------------------------------------- OpenAI

_TO_OPENAI_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_OPENAI_ERRORS = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
}


def openai_error_body(status: int, message: str, error_type: str | None = None) -> JSON:
    etype, code = _OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": error_type or etype, "param": None, "code": error_type or code}}


def _openai_usage(p: _Plan) -> JSON:
    prompt = p.input_tokens + p.cache_read + p.cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": p.output_tokens,
        "total_tokens": prompt + p.output_tokens,
        "prompt_tokens_details": {"cached_tokens": p.cache_read},
        "completion_tokens_details": {"reasoning_tokens": len(p.reasoning) // 4},
    }


def _openai_finish(p: _Plan) -> str:
    if p.finish:
        return _TO_OPENAI_FINISH.get(p.finish, p.finish)
    return "tool_calls" if p.calls else "stop"


def openai_completion(reply: Reply, body: JSON) -> JSON:
    p = _plan(reply, body, "call_")
    message: JSON = {"role": "assistant", "content": p.text or None, "refusal": None}
    if p.reasoning:
        message["reasoning_content"] = p.reasoning
    if p.calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in p.calls
        ]
    return {
        "id": f"chatcmpl-{_rand()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": p.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _openai_finish(p)}],
        "usage": _openai_usage(p),
    }


def openai_stream(reply: Reply, body: JSON) -> list[bytes]:
    """Framed ``data:`` events of a Chat Completions stream, ``[DONE]`` included."""
    p = _plan(reply, body, "call_")
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base: JSON = {"id": f"chatcmpl-{_rand()}", "object": "chat.completion.chunk", "created": int(time.time())}
    base |= {"model": p.model, "system_fingerprint": None}

    def chunk(delta: JSON, finish: str | None = None) -> bytes:
        obj = base | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            obj["usage"] = None
        return b"data: " + _encode(obj) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"reasoning_content": s}) for s in split_pieces(p.reasoning, p.chunks)]
    events += [chunk({"content": s}) for s in split_pieces(p.text, p.chunks)]
    for i, (cid, name, args) in enumerate(p.calls):
        first = {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
        events.append(chunk({"tool_calls": [first]}))
        for piece in split_pieces(args, max(2, p.chunks)):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    if reply.stream_error is not None:
        err = openai_error_body(503, reply.stream_error, reply.error_type)
        return [*events, b"data: " + _encode(err) + b"\n\n"]
    events.append(chunk({}, _openai_finish(p)))
    if include_usage:
        events.append(b"data: " + _encode(base | {"choices": [], "usage": _openai_usage(p)}) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


# ---------------------------------------------------------------- Anthropic

_TO_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_body(status: int, message: str, error_type: str | None = None) -> JSON:
    etype = error_type or _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": f"req_{_rand()}"}


def _signature(thinking: str) -> str:
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def _anthropic_usage(p: _Plan) -> JSON:
    return {
        "input_tokens": p.input_tokens,
        "output_tokens": p.output_tokens,
        "cache_creation_input_tokens": p.cache_write,
        "cache_read_input_tokens": p.cache_read,
    }


def _anthropic_stop(p: _Plan) -> str:
    if p.finish:
        return _TO_ANTHROPIC_STOP.get(p.finish, p.finish)
    return "tool_use" if p.calls else "end_turn"


def anthropic_message(reply: Reply, body: JSON) -> JSON:
    p = _plan(reply, body, "toolu_")
    content: list[JSON] = []
    if p.reasoning:
        content.append({"type": "thinking", "thinking": p.reasoning, "signature": _signature(p.reasoning)})
    if p.text:
        content.append({"type": "text", "text": p.text})
    for cid, name, args in p.calls:
        content.append({"type": "tool_use", "id": cid, "name": name, "input": msgspec.json.decode(args)})
    return {
        "id": f"msg_{_rand()}",
        "type": "message",
        "role": "assistant",
        "model": p.model,
        "content": content,
        "stop_reason": _anthropic_stop(p),
        "stop_sequence": None,
        "usage": _anthropic_usage(p),
    }


def _event(obj: JSON) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + _encode(obj) + b"\n\n"


def anthropic_stream(reply: Reply, body: JSON) -> list[bytes]:
    """Framed ``event:``/``data:`` events of a Messages stream, ``message_stop`` included."""
    p = _plan(reply, body, "toolu_")
    start_usage = _anthropic_usage(p) | {"output_tokens": 1}
    message: JSON = {"id": f"msg_{_rand()}", "type": "message", "role": "assistant", "model": p.model, "content": []}
    message |= {"stop_reason": None, "stop_sequence": None, "usage": start_usage}
    events = [_event({"type": "message_start", "message": message}), _event({"type": "ping"})]
    blocks: list[tuple[JSON, list[JSON]]] = []
    if p.reasoning:
        deltas = [{"type": "thinking_delta", "thinking": s} for s in split_pieces(p.reasoning, p.chunks)]
        deltas.append({"type": "signature_delta", "signature": _signature(p.reasoning)})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if p.text:
        blocks.append(
            ({"type": "text", "text": ""}, [{"type": "text_delta", "text": s} for s in split_pieces(p.text, p.chunks)])
        )
    for cid, name, args in p.calls:
        pieces = ["", *split_pieces(args, max(2, p.chunks))]
        deltas = [{"type": "input_json_delta", "partial_json": s} for s in pieces]
        blocks.append(({"type": "tool_use", "id": cid, "name": name, "input": {}}, deltas))
    for index, (block, deltas) in enumerate(blocks):
        events.append(_event({"type": "content_block_start", "index": index, "content_block": block}))
        events += [_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(_event({"type": "content_block_stop", "index": index}))
    if reply.stream_error is not None:
        err = anthropic_error_body(529, reply.stream_error, reply.error_type)
        return [*events, _event({"type": "error", "error": err["error"]})]
    delta = {"stop_reason": _anthropic_stop(p), "stop_sequence": None}
    events.append(_event({"type": "message_delta", "delta": delta, "usage": _anthropic_usage(p)}))
    return [*events, _event({"type": "message_stop"})]
