"""Thinking ⇄ reasoning parameters (conversion.md §3.4, §6.4, §9.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.convert.mapping import budget_for_effort, clamp_effort, effort_for_budget
from gateway.convert.profile import CapabilityProfile
from gateway.domain import Dialect
from gateway.protocols.anthropic import Thinking

__all__ = ["AnthropicThinking", "anthropic_thinking", "enable_thinking", "openai_reasoning"]

MIN_BUDGET = 1024


def openai_reasoning(
    thinking: Thinking | None, effort: str | None, profile: CapabilityProfile
) -> tuple[dict[str, Any], bool]:
    """A ``thinking`` (+ ``output_config.effort``) → O reasoning params; second item: reasoning on."""
    dialect = profile.reasoning_dialect
    kind = thinking.type if thinking is not None else "disabled"
    if kind not in ("enabled", "adaptive"):
        return _reasoning_off(dialect), False
    if kind == "enabled" and thinking is not None and thinking.budget_tokens:
        budget = thinking.budget_tokens
        chosen = effort_for_budget(budget)
    else:
        chosen = effort or "medium"
        budget = budget_for_effort(chosen)
    chosen = clamp_effort(chosen, profile.reasoning_efforts)
    return _reasoning_on(dialect, chosen, budget, adaptive=kind == "adaptive"), dialect != "none"


def _reasoning_off(dialect: str) -> dict[str, Any]:
    if dialect == "deepseek":
        return {"thinking": {"type": "disabled"}}
    if dialect == "qwen":
        return {"enable_thinking": False}
    return {}


def _reasoning_on(dialect: str, effort: str, budget: int, *, adaptive: bool) -> dict[str, Any]:
    if dialect == "openai":
        return {"reasoning_effort": effort}
    if dialect == "deepseek":
        return {"thinking": {"type": "enabled"}, "reasoning_effort": effort}
    if dialect == "qwen":
        return {"enable_thinking": True, "thinking_budget": budget}
    if dialect == "openrouter":
        return {"reasoning": {"effort": effort} if adaptive else {"max_tokens": budget}}
    return {}


@dataclass(frozen=True, slots=True)
class AnthropicThinking:
    thinking: dict[str, Any] | None
    effort: str | None
    max_tokens: int


def anthropic_thinking(effort: str | None, max_tokens: int | None, profile: CapabilityProfile) -> AnthropicThinking:
    """O ``reasoning_effort`` → A ``thinking`` (+ effort), fitted under ``max_tokens`` (§6.4)."""
    cap = profile.max_output_tokens
    if effort is None or effort == "none":
        return AnthropicThinking(None, None, _fit(max_tokens or profile.default_max_tokens, cap))
    if profile.thinking_mode == "adaptive":
        chosen = clamp_effort(effort if effort != "minimal" else "low", profile.reasoning_efforts)
        limit = _fit(max_tokens or profile.default_max_tokens, cap)
        return AnthropicThinking({"type": "adaptive"}, chosen, limit)
    mapped = budget_for_effort(effort)
    limit = _fit(max_tokens if max_tokens else mapped + 8192, cap)
    if limit <= MIN_BUDGET:
        return AnthropicThinking(None, None, limit)
    budget = max(MIN_BUDGET, min(mapped, limit - MIN_BUDGET))
    return AnthropicThinking({"type": "enabled", "budget_tokens": budget}, None, limit)


def _fit(value: int, cap: int | None) -> int:
    return min(value, cap) if cap else value


def enable_thinking(body: dict[str, Any], *, dialect: Dialect | str, budget: int) -> dict[str, Any]:
    """Turn extended thinking on in a request body of ``dialect`` (the ``-thinking`` model suffix)."""
    out = dict(body)
    if Dialect(dialect) is Dialect.OPENAI:
        out["reasoning_effort"] = effort_for_budget(budget)
        return out
    if Dialect(dialect) is Dialect.RESPONSES:
        raw = out.get("reasoning")
        reasoning: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if not reasoning.get("effort") or reasoning.get("effort") == "none":
            out["reasoning"] = {**reasoning, "effort": effort_for_budget(budget)}
        return out
    budget = max(budget, MIN_BUDGET)
    max_tokens = out.get("max_tokens")
    if isinstance(max_tokens, int):
        # The client's max_tokens is a spending promise: fit the budget under it (§6.4), never raise it.
        budget = min(budget, max_tokens - 1)
        if budget < MIN_BUDGET:
            return out
    else:
        out["max_tokens"] = budget + 8192
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    for key in ("temperature", "top_k"):
        out.pop(key, None)
    return out
