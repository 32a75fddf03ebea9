"""Mapping tables shared by every direction (conversion.md §9.1, §9.4)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.convert.profile import EFFORTS

__all__ = [
    "FAILED_FINISH_REASONS",
    "budget_for_effort",
    "clamp_effort",
    "effort_for_budget",
    "finish_reason_for",
    "stop_reason_for",
]

_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
#: Finish reasons that are not a normal end: the stream failed (§9.1, §11.70).
FAILED_FINISH_REASONS = {
    "insufficient_system_resource": "overloaded_error",
    "error": "api_error",
    "abort": "api_error",
}
_EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 32000}


def stop_reason_for(
    finish_reason: str | None,
    *,
    had_tool_use: bool,
    matched_stop: str | int | None = None,
    stop_sequences: Sequence[str] = (),
) -> tuple[str, str | None]:
    """O ``finish_reason`` → A ``(stop_reason, stop_sequence)``; any tool call wins (§11.27)."""
    reason = _FINISH_TO_STOP.get(finish_reason or "stop", "end_turn")
    if had_tool_use and reason not in ("max_tokens", "refusal"):
        return "tool_use", None
    if reason == "tool_use":
        return "end_turn", None  # "tool_calls" without any call: nothing for the client to run
    if reason == "end_turn" and isinstance(matched_stop, str) and matched_stop in stop_sequences:
        return "stop_sequence", matched_stop
    return reason, None


def finish_reason_for(stop_reason: str | None) -> str:
    """A ``stop_reason`` → O ``finish_reason``; unknown and null become ``stop`` (§11.56)."""
    return _STOP_TO_FINISH.get(stop_reason or "", "stop")


def effort_for_budget(budget: int) -> str:
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    if budget <= 24576:
        return "high"
    return "xhigh"


def budget_for_effort(effort: str) -> int:
    return _EFFORT_BUDGET.get(effort, 8192)


def clamp_effort(effort: str, allowed: Sequence[str]) -> str:
    """The allowed effort nearest to ``effort`` (ties go to the lower one)."""
    if effort in allowed or not allowed:
        return effort
    rank = {name: i for i, name in enumerate(EFFORTS)}
    want = rank.get(effort, rank["medium"])
    return min(allowed, key=lambda a: (abs(rank.get(a, want) - want), rank.get(a, 0)))
