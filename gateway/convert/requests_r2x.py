"""The neutral form of a Responses request (:mod:`gateway.convert.requests_r2a`) finished for one upstream.

``for_openai`` hands it to ``anthropic_request_to_openai``, the converter that already fits every
OpenAI-compatible upstream's profile (token fields, reasoning dialects, reasoning replay, schema
quirks). ``for_anthropic`` does what an Anthropic upstream needs on top: a ``max_tokens``, thinking
fitted to the model, structured output natively or through a forced tool, sampling that thinking
allows, an opaque user id, and the shared history sanitizer.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.convert.ids import hash_user
from gateway.convert.profile import CapabilityProfile
from gateway.convert.requests_a2o import anthropic_request_to_openai
from gateway.convert.requests_o2a import JSON_TOOL
from gateway.convert.requests_r2a import JSON_OBJECT_LINE, ResponsesConverted
from gateway.convert.sanitize import sanitize_anthropic_body
from gateway.convert.schema import object_schema
from gateway.convert.thinking import anthropic_thinking
from gateway.convert.types import Converted, ResponseHints
from gateway.errors import InvalidRequest

__all__ = ["for_anthropic", "for_openai"]


def for_openai(neutral: ResponsesConverted, *, upstream_model: str, profile: CapabilityProfile) -> Converted:
    try:
        converted = anthropic_request_to_openai(neutral.body, upstream_model=upstream_model, profile=profile)
    except InvalidRequest as exc:
        raise _in_client_terms(exc, neutral) from None
    notes = tuple(dict.fromkeys(neutral.notes + converted.notes))
    return Converted(body=converted.body, notes=notes, hints=converted.hints)


def for_anthropic(neutral: ResponsesConverted, *, upstream_model: str, profile: CapabilityProfile) -> Converted:
    body = {**neutral.body, "model": upstream_model}
    notes = list(neutral.notes)
    config = dict(body.pop("output_config", None) or {})
    effort = config.pop("effort", None) if body.pop("thinking", None) else None
    thinking = anthropic_thinking(effort, body.get("max_tokens"), profile)
    body["max_tokens"] = thinking.max_tokens
    if effort and effort != "none" and thinking.thinking is None:
        notes.append("thinking_dropped")  # max_output_tokens leaves no room for a thinking budget
    json_tool = _structured_output(body, config, profile)
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    if thinking.thinking is not None and forced:
        notes.append("thinking_disabled_forced_tool")
    elif thinking.thinking is not None:
        body["thinking"] = thinking.thinking
        if thinking.effort:
            config["effort"] = thinking.effort
    if config:
        body["output_config"] = config
    _sampling(body, profile, notes)
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        body["metadata"] = {"user_id": hash_user(str(user))}
    body, cleaned = sanitize_anthropic_body(body, for_anthropic=True, strict_thinking=True)
    if neutral.echo.get("prompt_cache_key"):
        _cache_breakpoints(body)
    hints = ResponseHints(json_tool=json_tool, provider="anthropic")
    return Converted(body=body, notes=tuple(dict.fromkeys(notes + cleaned)), hints=hints)


def _cache_breakpoints(body: dict[str, Any]) -> None:
    """A client that names a ``prompt_cache_key`` wants its prefix cached, which Anthropic does only where asked:
    mark the end of the tools, of the system prompt and of the conversation so far (the next turn resends it).
    """
    marked: list[dict[str, Any]] = []
    if body.get("tools"):
        marked.append(body["tools"][-1])
    if isinstance(body.get("system"), list) and body["system"]:
        marked.append(body["system"][-1])
    messages = body.get("messages") or []
    content = messages[-1].get("content") if messages else None
    if isinstance(content, list) and content and content[-1].get("type") not in ("thinking", "redacted_thinking"):
        marked.append(content[-1])
    for block in marked:
        block.setdefault("cache_control", {"type": "ephemeral"})


_BODY_PATH = re.compile(r"^messages\.(\d+)\.content\.(\d+)(?:\.content\.(\d+))?")


def _in_client_terms(exc: InvalidRequest, neutral: ResponsesConverted) -> InvalidRequest:
    """An error naming a place in the converted body, renamed to where the client sent it."""
    m = _BODY_PATH.match(exc.message)
    where = neutral.paths.get((int(m.group(1)), int(m.group(2)))) if m else None
    if m is None or where is None:
        return exc
    if m.group(3) is not None:
        where += f"[{m.group(3)}]"
    return InvalidRequest(where + exc.message[m.end() :])


def _structured_output(body: dict[str, Any], config: dict[str, Any], profile: CapabilityProfile) -> str | None:
    """Native ``output_config.format`` where the model has it; else a forced tool whose input is the answer."""
    fmt = config.get("format")
    if fmt is None or profile.supports_structured_outputs:
        return None
    del config["format"]
    schema = fmt.get("schema") or {}
    if body.get("tools"):
        # The model may still need its tools: the schema can only be asked for in words here.
        _system_line(body, f"{JSON_OBJECT_LINE} It must match this JSON schema: {_json(schema)}")
        return None
    description = "Return the final answer by calling this tool with it as the input."
    body["tools"] = [{"name": JSON_TOOL, "description": description, "input_schema": object_schema(schema)}]
    body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    return JSON_TOOL


def _sampling(body: dict[str, Any], profile: CapabilityProfile, notes: list[str]) -> None:
    """Thinking requires the default temperature; some models take temperature or top_p, not both."""
    if "thinking" in body:
        for key in ("temperature", "top_p"):
            if body.pop(key, None) is not None:
                notes.append(f"{key}_dropped")
        return
    if "temperature" in body:
        body["temperature"] = min(float(body["temperature"]), 1.0)
        if profile.temperature_top_p_exclusive and body.pop("top_p", None) is not None:
            notes.append("top_p_dropped")


def _system_line(body: dict[str, Any], text: str) -> None:
    body["system"] = [*(body.get("system") or []), {"type": "text", "text": text}]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
