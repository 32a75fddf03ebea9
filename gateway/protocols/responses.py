"""OpenAI Responses API wire models (``POST /v1/responses``): only the fields conversion reads.

Input items stay dicts: they come in some twenty kinds, and the converter reads each one by its
``type`` (and a message may omit ``type`` altogether). Unknown fields are ignored, so preview
fields (``client_metadata``, ``prompt_cache_options``, …) never cause a 400.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ECHO_FIELDS", "ResponsesRequest"]


class ResponsesRequest(msgspec.Struct):
    model: str = ""
    input: str | list[dict[str, Any]] | None = None
    instructions: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    store: bool | None = None
    include: list[str] | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    prompt: dict[str, Any] | None = None
    stream: bool | None = None


ECHO_FIELDS = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
)
"""Request fields a Response object repeats back to the client."""
