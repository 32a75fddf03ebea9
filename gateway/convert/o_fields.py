"""Reading the loosely specified parts of OpenAI-compatible messages, stream and non-stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.convert.errors import anthropic_error_type
from gateway.convert.events import StreamFailure
from gateway.convert.ids import sanitize_tool_id

__all__ = ["content_text", "failure_from", "reasoning_text", "tool_id_for_anthropic"]


def reasoning_text(content: str | None, reasoning: str | None, details: list[dict[str, Any]] | None) -> str:
    """``reasoning_content`` / ``reasoning`` / ``reasoning_details[].text``: first non-empty (§11.40)."""
    if content:
        return content
    if reasoning:
        return reasoning
    if not details:
        return ""
    parts = [d.get("text") or d.get("summary") for d in details if isinstance(d, dict)]
    return "".join(p for p in parts if isinstance(p, str))


def content_text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    if not content:
        return ""
    return "".join(str(p.get("text", "")) for p in content if p.get("type") in ("text", "output_text"))


def tool_id_for_anthropic(raw: str | None, new_id: Callable[[str], str], seen: set[str]) -> str:
    """A sanitized id (§2.1a), or a fresh ``toolu_`` one when missing or repeated (§2.1b)."""
    tool_id = sanitize_tool_id(raw) if raw else new_id("toolu_")
    while tool_id in seen:
        tool_id = new_id("toolu_")
    seen.add(tool_id)
    return tool_id


def failure_from(error: Any, status: int | None = None) -> StreamFailure:
    """An upstream error payload (``{"message","code","type"}`` or a string) → :class:`StreamFailure`."""
    if isinstance(error, dict):
        message = str(error.get("message") or "upstream error")
        code = error.get("code")
        code_text = str(code) if isinstance(code, str) else str(error.get("type") or "")
        status = code if isinstance(code, int) else status
    else:
        message, code_text = str(error or "upstream error"), ""
    kind, text = anthropic_error_type(status, code_text, message)
    return StreamFailure(kind, text)
