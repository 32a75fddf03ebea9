"""A conservative local estimate of a request's input tokens, for either dialect.

Used for ``message_start.usage.input_tokens`` (Claude Code's context meter, §5.1 / §11.10) and
for ``count_tokens`` toward OpenAI-compatible upstreams (§10.1), where no tokenizer call is
possible. It errs high: undercounting makes Claude Code hit hard "prompt is too long" errors,
overcounting only compacts early. UTF-8 bytes / 3.5 is ~4 characters a token for English and
~1 token per CJK character; images count 1600 tokens, PDFs decoded-bytes / 3; +10 % margin.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_input_tokens"]

IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD = 4
_BINARY_KEYS = frozenset({"data", "file_data", "url"})


def _binary_tokens(value: str) -> int | None:
    """Tokens for an inline image/PDF payload, or None when ``value`` is ordinary text."""
    if value.startswith("data:"):
        media = value[5:].split(";", 1)[0]
        return _payload_tokens(media, len(value))
    return None


def _payload_tokens(media: str, size: int) -> int:
    if media.startswith("image/"):
        return IMAGE_TOKENS
    return max(size * 3 // 4 // 3, 1)


def _walk(node: Any, media: str | None = None) -> tuple[int, int]:
    """(text bytes, fixed tokens) of a JSON value."""
    if isinstance(node, str):
        return len(node.encode()), 0
    if isinstance(node, list):
        pairs = [_walk(item) for item in node]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    if not isinstance(node, dict):
        return (len(str(node)) if node is not None else 0), 0
    text = fixed = 0
    kind = node.get("media_type") if isinstance(node.get("media_type"), str) else media
    for key, value in node.items():
        if key in _BINARY_KEYS and isinstance(value, str):
            tokens = _binary_tokens(value)
            if tokens is None and key == "data" and kind and len(value) > 256:
                tokens = _payload_tokens(kind, len(value))
            if tokens is not None:
                fixed += tokens
                continue
        if key in ("cache_control", "signature", "type"):
            continue
        sub_text, sub_fixed = _walk(value, kind)
        text += len(key) + sub_text
        fixed += sub_fixed
    return text, fixed


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Estimate for an Anthropic or OpenAI request body: system, messages and tools."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    text, fixed = _walk([body.get("system"), messages, body.get("tools")])
    raw = text / 3.5 + fixed + MESSAGE_OVERHEAD * len(messages or [])
    return int(raw * 1.1) + 1
