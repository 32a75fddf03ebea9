"""Token usage in both dialects (conversion.md §9.2). ``Usage`` uses Anthropic accounting."""

from __future__ import annotations

from typing import Any

from gateway.domain import Usage

__all__ = [
    "estimate_tokens",
    "usage_from_anthropic",
    "usage_from_openai",
    "usage_to_anthropic",
    "usage_to_openai",
]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _first(*values: Any) -> int:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 0)
    return 0


def usage_from_openai(usage: dict[str, Any] | None) -> Usage:
    """O usage → :class:`Usage`; ``prompt_tokens`` includes cached tokens, ``input_tokens`` does not."""
    if not usage:
        return Usage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    cache_read = _first(
        prompt_details.get("cached_tokens"), usage.get("prompt_cache_hit_tokens"), usage.get("cache_read_input_tokens")
    )
    cache_write = _first(prompt_details.get("cache_write_tokens"), usage.get("cache_creation_input_tokens"))
    prompt = _int(usage.get("prompt_tokens"))
    return Usage(
        input_tokens=max(prompt - cache_read - cache_write, 0),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    if not usage:
        return Usage()
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_tokens=_int(usage.get("cache_read_input_tokens")),
        cache_write_tokens=_int(usage.get("cache_creation_input_tokens")),
    )


def usage_to_anthropic(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def usage_to_openai(usage: Usage, reasoning_tokens: int | None = None) -> dict[str, Any]:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }
    if usage.cache_write_tokens:
        out["prompt_tokens_details"]["cache_write_tokens"] = usage.cache_write_tokens
    if reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return out


def estimate_tokens(chars: int) -> int:
    """A rough local count (~4 characters a token), never 0 for non-empty output (§5.6)."""
    return (chars + 3) // 4
