"""First checks of a door's body: JSON object, the fields routing and relaying depend on.

Everything else is checked by the converters (other dialect) or the upstream itself (passthrough),
so fields we don't know survive untouched.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from gateway.domain import Dialect
from gateway.errors import InvalidRequest

_decode = msgspec.json.Decoder().decode
MAX_TOKENS_CEILING = 10_000_000


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object, with a clear 400 for anything else."""
    if not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        body = _decode(raw)
    except msgspec.ValidationError:  # valid JSON holding a number no machine type can (1e309, 5000 digits)
        raise InvalidRequest(_out_of_range_message(raw)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except (RecursionError, ValueError):
        raise InvalidRequest("request body is not valid JSON: nested too deeply or too large a number") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def parse_body(raw: bytes, door: Dialect, *, count_tokens: bool = False, endpoint: str = "chat") -> dict[str, Any]:
    """``endpoint``: ``chat`` (the door's own), or ``embeddings`` / ``completions`` (OpenAI door only)."""
    body = parse_json_object(raw)
    model = body.get("model")
    if model is None:
        raise InvalidRequest("model: field required", param="model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: must be a non-empty string", param="model")
    if endpoint != "chat":
        _check_inputs(body, "input" if endpoint == "embeddings" else "prompt")
    elif door is Dialect.RESPONSES:
        _check_responses(body)
    else:
        messages = body.get("messages")
        if messages is None:
            raise InvalidRequest("messages: field required", param="messages")
        if not isinstance(messages, list):
            raise InvalidRequest("messages: must be an array", param="messages")
    if "stream" in body and not isinstance(body["stream"], bool) and body["stream"] is not None:
        raise InvalidRequest("stream: must be a boolean", param="stream")
    if count_tokens:
        body.pop("stream", None)
        return body
    if door is Dialect.ANTHROPIC:
        _check_max_tokens(body, "max_tokens", required=True)
    elif door is Dialect.RESPONSES:
        _check_max_tokens(body, "max_output_tokens", required=False)
    else:
        _check_max_tokens(body, "max_tokens", required=False)
        _check_max_tokens(body, "max_completion_tokens", required=False)
    return body


_UNSUPPORTED = {
    "background": "background responses are not supported by this gateway; send background: false",
    "conversation": "conversation objects are not supported by this gateway; use previous_response_id",
    "prompt": "stored prompt templates are not supported by this gateway; send instructions and input",
}


def _check_responses(body: dict[str, Any]) -> None:
    items = body.get("input")
    if items is None and not body.get("previous_response_id"):
        raise InvalidRequest("input: field required", param="input")
    if items is not None and not isinstance(items, str | list):
        raise InvalidRequest("input: must be a string or an array of items", param="input")
    if isinstance(items, list) and not all(isinstance(i, dict) for i in items):
        raise InvalidRequest("input: every item must be an object", param="input")
    for name, message in _UNSUPPORTED.items():
        if body.get(name):
            raise InvalidRequest(f"{name}: {message}", param=name)


def _check_inputs(body: dict[str, Any], name: str) -> None:
    """An embeddings ``input`` or a completions ``prompt``: a string, strings, token ids, or token arrays."""
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"{name}: field required", param=name)
    strings = isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    if isinstance(value, str) or strings or _token_ids(value):
        return
    if isinstance(value, list) and value and all(_token_ids(v) for v in value):
        return
    raise InvalidRequest(f"{name}: must be a string, an array of strings or an array of token ids", param=name)


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int for t in value)


def _check_max_tokens(body: dict[str, Any], name: str, *, required: bool) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name}: field required", param=name)
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name}: must be an integer", param=name)
    if not 1 <= value <= MAX_TOKENS_CEILING:
        raise InvalidRequest(f"{name}: must be between 1 and {MAX_TOKENS_CEILING}", param=name)


class _OutOfRange:
    pass


def _out_of_range_message(raw: bytes) -> str:
    """Name the field holding the out-of-range number (msgspec says only ``$[...]``); error path only."""
    marker = _OutOfRange()

    def parse_int(text: str) -> int | _OutOfRange:
        if len(text) > 20:  # beyond any int64/uint64, and below Python's int-string limit
            return marker
        value = int(text)
        return value if -(2**63) <= value < 2**64 else marker

    def parse_float(text: str) -> float | _OutOfRange:
        value = float(text)
        return marker if math.isinf(value) else value

    try:
        doc = json.loads(raw, parse_int=parse_int, parse_float=parse_float)
    except (ValueError, RecursionError):
        doc = None
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        path, value = stack.pop()
        if value is marker:
            return f"{path or 'body'}: number out of range"
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return "request body holds a number out of range"
