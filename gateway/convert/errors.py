"""Upstream error bodies in the client's dialect (conversion.md §9.5, claude-code-wire.md §0.10).

The wordings Claude Code heals itself from:

- a context-length failure: ``prompt is too long: N tokens > M maximum`` (it compacts), or, when only
  the asked ``max_tokens`` does not fit, ``input length and `max_tokens` exceed context limit:
  X + Y > Z`` (it retries with less);
- unsupported reasoning parameters: ``thinking.type: adaptive is not supported``;
- a misplaced system role: ``Unexpected role "system"``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

__all__ = [
    "anthropic_error_to_openai",
    "anthropic_error_type",
    "error_should_retry",
    "is_context_message",
    "openai_error_for_type",
    "openai_error_to_anthropic",
]

_A_BY_STATUS = {
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
_CONTEXT = re.compile(
    r"context[ _]length|context window|maximum context|too many tokens|prompt is too long|reduce the length"
    r"|input is too long|exceeds? the (?:model's )?(?:maximum|max)|exceed context limit",
    re.IGNORECASE,
)
_MAX = re.compile(r"(?:maximum context length|context length|context window|limit)\D{0,20}?(\d{3,})", re.I)
_GOT = re.compile(
    r"(?:resulted in|requested|you have|has|your request has|got)\D{0,10}?(\d{3,})\s*(?:input )?tokens", re.I
)
_REASONING = re.compile(r"reasoning|thinking", re.IGNORECASE)
_UNSUPPORTED = re.compile(r"not supported|unsupported|unrecognized|unknown|not allowed|invalid|extra", re.IGNORECASE)
_SYSTEM_ROLE = re.compile(r"system", re.IGNORECASE)
_ROLE = re.compile(r"role|message", re.IGNORECASE)
_POSITION = re.compile(r"must be|beginning|first|only|unexpected|not allowed|invalid|unknown variant", re.I)
THINKING_UNSUPPORTED = "thinking.type: adaptive is not supported by this model"
UNEXPECTED_SYSTEM = (
    'Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
    'not "system" as an input message role.'
)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(body) if body else {}
    except (msgspec.DecodeError, RecursionError):
        return {"message": body.decode("utf-8", "replace")[:500].strip()}
    if not isinstance(data, dict):
        return {"message": str(data)[:500]}
    err = data.get("error")
    if isinstance(err, dict):
        return err
    if isinstance(err, str):
        return {"message": err}
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# OpenAI, DeepSeek, vLLM (older): "maximum context length is Z tokens. However, you requested T tokens
# (X in the messages, Y in the completion)".
_SPLIT = re.compile(r"(\d+) in the messages,?\s*(\d+) in the completion", re.I)
# vLLM (newer), Kimi, Qwen: "'max_tokens' … is too large: Y. This model's maximum context length is Z tokens
# and your request has X input tokens".
_TOO_LARGE = re.compile(r"max_(?:completion_)?tokens\W.{0,60}?too large\D{0,5}(\d+)", re.I | re.S)
_INPUT = re.compile(r"(\d+)\s*input tokens", re.I)
_A_CONTEXT_LIMIT = re.compile(r"exceed context limit:\s*(\d+)\s*\+\s*(\d+)\s*>\s*(\d+)", re.I)


def _input_output_limit(message: str) -> tuple[int, int, int] | None:
    """(input tokens, asked output tokens, context limit) when the upstream's message states all three."""
    limit = _MAX.search(message)
    if limit is None:
        return None
    split = _SPLIT.search(message)
    if split:
        return int(split.group(1)), int(split.group(2)), int(limit.group(1))
    asked, given = _TOO_LARGE.search(message), _INPUT.search(message)
    if asked and given:
        return int(given.group(1)), int(asked.group(1)), int(limit.group(1))
    return None


def prompt_too_long(message: str) -> str:
    """A context-length failure in Anthropic's own two wordings, which Claude Code acts on.

    When the input alone fits but input + ``max_tokens`` does not: ``input length and `max_tokens` exceed
    context limit: X + Y > Z, …``, on which Claude Code retries by itself with a smaller ``max_tokens``.
    Otherwise ``prompt is too long: N tokens > M maximum``, on which it compacts the conversation.
    """
    if _A_CONTEXT_LIMIT.search(message):
        return message
    parts = _input_output_limit(message)
    if parts is not None and parts[0] < parts[2] < parts[0] + parts[1]:
        x, y, z = parts
        return (
            f"input length and `max_tokens` exceed context limit: {x} + {y} > {z}, "
            "decrease input length or `max_tokens` and try again"
        )
    got, limit = _GOT.search(message), _MAX.search(message)
    if got and limit:
        return f"prompt is too long: {got.group(1)} tokens > {limit.group(1)} maximum"
    return message if message.lower().startswith("prompt is too long") else f"prompt is too long: {message}"


def is_context_message(message: str) -> bool:
    """An Anthropic-worded context-length failure (either wording)."""
    return message.lower().startswith("prompt is too long") or _A_CONTEXT_LIMIT.search(message) is not None


def _is_context(code: str, message: str) -> bool:
    return code == "context_length_exceeded" or bool(_CONTEXT.search(message))


def anthropic_error_type(status: int | None, code: str, message: str) -> tuple[str, str]:
    """An O-style failure (status, code, message) → A ``(error.type, message)``; mid-stream too."""
    lowered = f"{code} {message}".lower()
    if _is_context(code, message):
        return "invalid_request_error", prompt_too_long(message)
    if code == "insufficient_quota" or status == 402:
        return "billing_error", message
    if status in (503, 529) or "overload" in lowered or "insufficient_system_resource" in lowered:
        return "overloaded_error", message
    if status == 429 or "rate limit" in lowered or "rate_limit" in lowered:
        return "rate_limit_error", message
    if status in (408, 504) or "timeout" in lowered:
        return "timeout_error", message
    if status is not None and status in _A_BY_STATUS and status < 500:
        return _A_BY_STATUS[status], message
    return "api_error", message


def _bad_request_message(message: str) -> str:
    if _REASONING.search(message) and _UNSUPPORTED.search(message):
        return f"{THINKING_UNSUPPORTED} (upstream: {message})"
    if _SYSTEM_ROLE.search(message) and _ROLE.search(message) and _POSITION.search(message):
        return f"{UNEXPECTED_SYSTEM} (upstream: {message})"
    return f"Upstream error: {message}"


def openai_error_to_anthropic(status: int, body: bytes) -> tuple[int, dict[str, Any]]:
    """An O upstream's error response → (status, A error envelope) for an A client."""
    err = _parse(body)
    message = _text(err.get("message")) or f"upstream returned HTTP {status}"
    code = _text(err.get("code")) or _text(err.get("type"))
    out_status, kind = _status_o2a(status, code, message)
    if kind == "invalid_request_error" and out_status == 400:
        message = prompt_too_long(message) if _is_context(code, message) else _bad_request_message(message)
    elif status == 401:
        message = "upstream authentication failed"
    return out_status, {"type": "error", "error": {"type": kind, "message": message}}


def _status_o2a(status: int, code: str, message: str) -> tuple[int, str]:
    if status in (400, 422):
        return 400, "invalid_request_error"
    if status == 401:
        return 502, "api_error"
    if status == 402 or code == "insufficient_quota":
        return 402, "billing_error"
    if status in (408, 504):
        return 504, "timeout_error"
    if status in (503, 529):
        return 529, "overloaded_error"
    if status >= 500:
        return status, "api_error"
    return status, _A_BY_STATUS.get(status, "invalid_request_error")


_O_BY_A_TYPE: dict[str, tuple[int, str, str | None]] = {
    "invalid_request_error": (400, "invalid_request_error", None),
    "authentication_error": (502, "server_error", "upstream_authentication_failed"),
    "billing_error": (429, "insufficient_quota", "insufficient_quota"),
    "permission_error": (403, "permission_error", None),
    "not_found_error": (404, "invalid_request_error", None),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_error": (429, "requests", "rate_limit_exceeded"),
    "api_error": (500, "server_error", None),
    "timeout_error": (504, "server_error", "timeout"),
    "overloaded_error": (503, "server_error", "overloaded"),
}


def openai_error_for_type(a_type: str, message: str) -> tuple[int, dict[str, Any]]:
    """An A ``error.type`` + message → (status, O ``error`` object); mid-stream too."""
    status, kind, code = _O_BY_A_TYPE.get(a_type, (500, "server_error", None))
    if a_type == "invalid_request_error" and is_context_message(message):
        code = "context_length_exceeded"
    if a_type == "not_found_error" and "model" in message.lower():
        code = "model_not_found"
    if a_type == "authentication_error":
        message = "upstream authentication failed"
    return status, {"message": message, "type": kind, "param": None, "code": code}


def anthropic_error_to_openai(status: int, body: bytes) -> tuple[int, dict[str, Any]]:
    """An A upstream's error response → (status, O error envelope) for an O client."""
    err = _parse(body)
    message = _text(err.get("message")) or f"upstream returned HTTP {status}"
    a_type = _text(err.get("type"))
    if a_type in ("", "error") or a_type not in _O_BY_A_TYPE:
        a_type = _A_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    out_status, obj = openai_error_for_type(a_type, message)
    if a_type == "api_error" and status >= 500:
        out_status = status  # keep 502/503 from the upstream rather than flattening to 500
    return out_status, {"error": obj}


def error_should_retry(status: int, envelope: dict[str, Any]) -> bool | None:
    """``x-should-retry`` for a converted error: False when retrying cannot help, else None."""
    err = envelope.get("error") or {}
    kind = err.get("type")
    if kind in ("billing_error", "insufficient_quota") or err.get("code") == "upstream_authentication_failed":
        return False
    if status == 502 and err.get("message") == "upstream authentication failed":
        return False
    return None
