"""Fold an Anthropic event stream into one Message object (the SDK accumulator's rules).

The non-streaming O→A path renders through the same writer as the stream and folds the
result here, so both paths share one code path (conversion.md §0.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.convert.jsonargs import parse_arguments
from gateway.errors import UpstreamError
from gateway.protocols.sse import SSEEvent

__all__ = ["STATUS_FOR_ERROR_TYPE", "accumulate_message"]

STATUS_FOR_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 502,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _apply_delta(block: dict[str, Any], delta: dict[str, Any], args: dict[int, str], index: int) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] += delta.get("text", "")
    elif kind == "thinking_delta":
        block["thinking"] += delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")
    elif kind == "input_json_delta":
        args[index] = args.get(index, "") + delta.get("partial_json", "")


def accumulate_message(events: Iterable[SSEEvent]) -> dict[str, Any]:
    """Raises :class:`UpstreamError` when the stream carries an ``error`` event."""
    message: dict[str, Any] = {}
    args: dict[int, str] = {}
    for event in events:
        payload = msgspec.json.decode(event.data)
        kind = payload.get("type")
        if kind == "message_start":
            message = dict(payload["message"])
            message["content"] = []
        elif kind == "content_block_start":
            message["content"].append(dict(payload["content_block"]))
        elif kind == "content_block_delta":
            index = payload["index"]
            _apply_delta(message["content"][index], payload["delta"], args, index)
        elif kind == "content_block_stop" and message["content"][payload["index"]]["type"] == "tool_use":
            message["content"][payload["index"]]["input"] = parse_arguments(args.get(payload["index"], ""))
        elif kind == "message_delta":
            message.update(payload["delta"])
            message["usage"] = {**message.get("usage", {}), **(payload.get("usage") or {})}
        elif kind == "error":
            err = payload["error"]
            status = STATUS_FOR_ERROR_TYPE.get(err["type"], 502)
            raise UpstreamError(err["message"], status_code=status, error_type=err["type"])
    return message
