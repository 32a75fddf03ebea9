"""Token usage in both dialects (conversion.md §9.2). ``Usage`` uses Anthropic accounting."""

from __future__ import annotations

from typing import Any

from gateway.domain import Usage

__all__ = [
    "estimate_tokens",
    "usage_from_anthropic",
    "usage_from_openai",
    "usage_from_responses",
    "usage_to_anthropic",
    "usage_to_openai",
]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _most(*values: Any) -> int:
    """The largest positive count of several fields that name the same tokens (providers fill one, some fill two)."""
    return max((_int(v) for v in values), default=0)


def usage_from_openai(usage: dict[str, Any] | None) -> Usage:
    """OpenAI-compatible chat usage → :class:`Usage`; ``prompt_tokens`` includes cached tokens, ours does not.

    Cached input arrives under a different name per provider, each counted inside ``prompt_tokens``:
    OpenAI (and Qwen, GLM, Gemini, OpenRouter) ``prompt_tokens_details.cached_tokens``; DeepSeek
    ``prompt_cache_hit_tokens`` (beside ``prompt_cache_miss_tokens``, the uncached rest); Kimi a
    top-level ``cached_tokens``; Anthropic-backed proxies ``cache_read_input_tokens``. They name the
    same tokens, so the largest is taken, never the sum. Cache writes (OpenRouter's
    ``prompt_tokens_details.cache_write_tokens``, proxies' ``cache_creation_input_tokens``) are in
    ``prompt_tokens`` too.
    """
    if not usage:
        return Usage()
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cache_read = _most(
        details.get("cached_tokens"),
        usage.get("prompt_cache_hit_tokens"),
        usage.get("cached_tokens"),
        usage.get("cache_read_input_tokens"),
    )
    cache_write = _most(details.get("cache_write_tokens"), usage.get("cache_creation_input_tokens"))
    if isinstance(usage.get("prompt_tokens"), int):
        uncached = _int(usage.get("prompt_tokens")) - cache_read - cache_write
    else:  # DeepSeek-style usage without prompt_tokens still names the uncached part
        uncached = _int(usage.get("prompt_cache_miss_tokens"))
    return Usage(
        input_tokens=max(uncached, 0),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def usage_from_responses(usage: Any) -> Usage:
    """Responses API usage → :class:`Usage`: its ``input_tokens`` includes cached input, ours does not.

    ``input_tokens_details.cached_tokens`` is the cache read; ``cache_write_tokens`` beside it is
    what OpenRouter-style upstreams report for writes.
    """
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = _int(details.get("cached_tokens"))
    written = _int(details.get("cache_write_tokens"))
    return Usage(
        input_tokens=max(_int(usage.get("input_tokens")) - cached - written, 0),
        output_tokens=_int(usage.get("output_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    """Anthropic usage is already ours: ``input_tokens`` excludes ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` (the same holds for Kimi's and DeepSeek's Anthropic endpoints)."""
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
