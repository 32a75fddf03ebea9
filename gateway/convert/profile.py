"""Per-upstream capability profile (conversion.md §0.3): what an upstream model accepts.

Keys are exactly the spec's names, plus ``null_assistant_content`` (§3.2: "make it a profile
switch, default null") and ``reasoning_efforts`` (the effort names the upstream accepts, §3.4
"clamp to what the upstream accepts"). ``None`` for ``max_output_tokens`` / ``max_stop_sequences``
means "no limit".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from gateway.domain import Dialect
from gateway.errors import InvalidRequest

__all__ = ["EFFORTS", "CapabilityProfile", "ReasoningDialect", "ThinkingMode"]

ReasoningDialect = Literal["none", "openai", "deepseek", "qwen", "openrouter"]
ThinkingMode = Literal["enabled", "adaptive"]
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max")

_CHOICES: dict[str, tuple[str, ...]] = {
    "reasoning_dialect": get_args(ReasoningDialect),
    "thinking_mode": get_args(ThinkingMode),
    "max_tokens_field": get_args(MaxTokensField),
}
_STR_TUPLES = frozenset({"json_schema_sanitizer", "reasoning_efforts"})
_OPTIONAL_INTS = frozenset({"max_output_tokens", "max_stop_sequences"})
_INTS = frozenset({"default_max_tokens"})


@dataclass(frozen=True, slots=True)
class CapabilityProfile:
    max_output_tokens: int | None = None
    max_tokens_field: MaxTokensField = "max_tokens"
    default_max_tokens: int = 8192
    supports_stream_options: bool = True
    supports_top_k: bool = False
    supports_parallel_tool_calls_param: bool = True
    supports_image_input: bool = True
    supports_pdf_input: bool = False
    max_stop_sequences: int | None = 4
    reasoning_dialect: ReasoningDialect = "none"
    requires_reasoning_replay: bool = False
    strip_cache_control: bool = True
    supports_sampling_params: bool = True
    supports_assistant_prefill: bool = False
    supports_structured_outputs: bool = False
    think_tags: bool = False
    stream_all_tools_live: bool = False
    json_schema_sanitizer: tuple[str, ...] = ("$schema", "format")
    tool_args_may_be_cumulative: bool = False
    thinking_mode: ThinkingMode = "enabled"
    temperature_top_p_exclusive: bool = False
    null_assistant_content: bool = True
    reasoning_efforts: tuple[str, ...] = field(default=("low", "medium", "high"))
    supports_responses: bool = False
    """An OpenAI-dialect upstream that serves ``POST /responses`` itself: the Responses door passes through."""
    supports_threads: bool = False
    """An Anthropic upstream that holds message threads itself (the Claude API): ``thread`` is forwarded."""

    @classmethod
    def for_dialect(cls, dialect: Dialect | str, overrides: Mapping[str, Any] | None = None) -> CapabilityProfile:
        """Defaults for an upstream of ``dialect`` merged with validated ``overrides``."""
        base = _ANTHROPIC_DEFAULTS if Dialect(dialect) is Dialect.ANTHROPIC else _OPENAI_DEFAULTS
        if not overrides:
            return base
        return dataclasses.replace(base, **{k: _check(k, v) for k, v in overrides.items()})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


_FIELDS = {f.name for f in dataclasses.fields(CapabilityProfile)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check(key: str, value: Any) -> Any:
    if key not in _FIELDS:
        raise InvalidRequest(f"profile.{key}: unknown capability key")
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            raise InvalidRequest(f"profile.{key}: must be one of {', '.join(_CHOICES[key])}")
        return value
    if key in _STR_TUPLES:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise InvalidRequest(f"profile.{key}: must be a list of strings")
        return tuple(value)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _OPTIONAL_INTS or key in _INTS:
        if (value is None and key in _OPTIONAL_INTS) or (is_int and value >= 0):
            return value
        raise InvalidRequest(f"profile.{key}: must be a non-negative integer")
    if not isinstance(value, bool):
        raise InvalidRequest(f"profile.{key}: must be true or false")
    return value


_OPENAI_DEFAULTS = CapabilityProfile()
_ANTHROPIC_DEFAULTS = CapabilityProfile(
    supports_stream_options=False,
    supports_top_k=True,
    supports_pdf_input=True,
    max_stop_sequences=None,
    strip_cache_control=False,
    supports_assistant_prefill=True,
    json_schema_sanitizer=(),
    temperature_top_p_exclusive=True,
    reasoning_efforts=("low", "medium", "high", "xhigh", "max"),
)
