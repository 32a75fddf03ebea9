"""Fold an OpenAI chunk stream into one chat.completion (the SDK accumulator's rules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.errors import UpstreamError
from gateway.protocols.sse import SSEEvent

__all__ = ["accumulate_completion"]


def _fold(message: dict[str, Any], delta: dict[str, Any], calls: dict[int, dict[str, Any]]) -> None:
    for key in ("content", "reasoning_content"):
        if delta.get(key):
            message[key] = (message.get(key) or "") + delta[key]
    for block in delta.get("thinking_blocks") or []:
        message.setdefault("thinking_blocks", []).append({k: v for k, v in block.items() if k != "index"})
    for call in delta.get("tool_calls") or []:
        entry = calls.setdefault(
            call["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        entry["id"] = call.get("id") or entry["id"]
        fn = call.get("function") or {}
        entry["function"]["name"] += fn.get("name") or ""
        entry["function"]["arguments"] += fn.get("arguments") or ""


def accumulate_completion(events: Iterable[SSEEvent]) -> dict[str, Any]:
    """Raises :class:`UpstreamError` when the stream carries an error chunk."""
    head: dict[str, Any] = {}
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: dict[str, Any] | None = None
    for event in events:
        if event.data == "[DONE]":
            break
        chunk = msgspec.json.decode(event.data)
        if "error" in chunk:
            err = chunk["error"]
            raise UpstreamError(str(err.get("message")), status_code=502, error_type=str(err.get("type")))
        head = head or {k: chunk[k] for k in ("id", "created", "model")}
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            _fold(message, choice.get("delta") or {}, calls)
            finish = choice.get("finish_reason") or finish
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    elif message["content"] is None:
        message["content"] = ""
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    out = {**head, "object": "chat.completion", "choices": [choice]}
    if usage is not None:
        out["usage"] = usage
    return out
