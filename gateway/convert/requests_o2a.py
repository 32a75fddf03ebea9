"""OpenAI Chat Completions request → Anthropic Messages request (conversion.md §6)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.convert.ids import hash_user, shorten_tool_name, tool_name_map
from gateway.convert.o2a_messages import convert_messages
from gateway.convert.profile import CapabilityProfile
from gateway.convert.sanitize import sanitize_anthropic_body
from gateway.convert.schema import object_schema, strip_keywords
from gateway.convert.thinking import anthropic_thinking
from gateway.convert.types import Converted, ResponseHints
from gateway.convert.validation import decode_as, field_error
from gateway.protocols.openai import ChatRequest

__all__ = ["JSON_TOOL", "openai_request_to_anthropic"]

JSON_TOOL = "json_output"
JSON_OBJECT_LINE = "Respond with a single JSON object only."


def _reject_unsupported(req: ChatRequest) -> None:
    if req.n is not None and req.n > 1:
        raise field_error("n", "n>1 is not supported for this model")
    if req.logprobs:
        raise field_error("logprobs", "logprobs are not supported for this model")
    if req.audio is not None or "audio" in (req.modalities or []):
        raise field_error("modalities", "audio output is not supported for this model")


def openai_request_to_anthropic(body: dict[str, Any], *, upstream_model: str, profile: CapabilityProfile) -> Converted:
    req: ChatRequest = decode_as(body, ChatRequest)
    _reject_unsupported(req)
    notes: list[str] = []
    system, messages = convert_messages(req.messages, shorten_tool_name)
    tools, names = _tools(req, profile)
    out: dict[str, Any] = {"model": upstream_model, "messages": messages}
    json_tool = _response_format(out, req, profile, tools, system)
    if system:
        out["system"] = [{"type": "text", "text": text} for text in system]
    if tools:
        out["tools"] = tools
        choice = _tool_choice(req, names, notes)
        if json_tool is not None:
            choice = {"type": "tool", "name": JSON_TOOL}
        if choice is not None:
            out["tool_choice"] = choice
    thinking = anthropic_thinking(_effort(req), req.max_completion_tokens or req.max_tokens, profile)
    out["max_tokens"] = thinking.max_tokens
    thinking_on = thinking.thinking is not None
    if thinking_on and isinstance(out.get("tool_choice"), dict) and out["tool_choice"]["type"] in ("any", "tool"):
        notes.append("thinking_disabled_forced_tool")
        thinking_on = False
    if thinking_on:
        out["thinking"] = thinking.thinking
        if thinking.effort:
            out.setdefault("output_config", {})["effort"] = thinking.effort
    _sampling(out, req, profile, thinking_on, notes)
    if req.stop:
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop)
        # Anthropic answers 400 to a whitespace-only stop sequence ("\n\n" is common from OpenAI clients).
        kept = [stop for stop in stops if stop.strip()]
        if len(kept) < len(stops):
            notes.append("stop_whitespace_dropped")
        if kept:
            out["stop_sequences"] = kept
    user = req.user or req.safety_identifier
    if user:
        out["metadata"] = {"user_id": hash_user(user)}
    if req.stream:
        out["stream"] = True
    out, cleaned = sanitize_anthropic_body(out, for_anthropic=True, strict_thinking=True)
    hints = ResponseHints(tool_names=tool_name_map(names), json_tool=json_tool, provider="anthropic")
    return Converted(body=out, notes=tuple(dict.fromkeys(notes + cleaned)), hints=hints)


def _effort(req: ChatRequest) -> str | None:
    if req.reasoning_effort:
        return req.reasoning_effort
    effort = (req.reasoning or {}).get("effort")
    return effort if isinstance(effort, str) else None


def _sampling(
    out: dict[str, Any], req: ChatRequest, profile: CapabilityProfile, thinking_on: bool, notes: list[str]
) -> None:
    if req.temperature is not None:
        if thinking_on:
            notes.append("temperature_dropped")
        else:
            out["temperature"] = min(req.temperature, 1.0)
    if req.top_p is not None:
        exclusive = profile.temperature_top_p_exclusive and "temperature" in out
        if exclusive or (thinking_on and req.top_p < 0.95):
            notes.append("top_p_dropped")
        else:
            out["top_p"] = req.top_p
    if req.top_k is not None:
        if thinking_on or not profile.supports_top_k:
            notes.append("top_k_dropped")
        else:
            out["top_k"] = req.top_k


def _function_defs(req: ChatRequest) -> list[tuple[str, dict[str, Any]]]:
    defs: list[tuple[str, dict[str, Any]]] = []
    for i, tool in enumerate(req.tools or []):
        if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise field_error(f"tools.{i}.type", f"tool type '{tool.get('type')}' is not supported for this model")
        defs.append((f"tools.{i}.function", tool["function"]))
    defs.extend((f"functions.{i}", fn) for i, fn in enumerate(req.functions or []) if isinstance(fn, dict))
    return defs


def _tools(req: ChatRequest, profile: CapabilityProfile) -> tuple[list[dict[str, Any]], list[str]]:
    allowed = _allowed_tools(req.tool_choice)
    tools: list[dict[str, Any]] = []
    names: list[str] = []
    for where, fn in _function_defs(req):
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise field_error(f"{where}.name", "field required")
        if allowed is not None and name not in allowed:
            continue
        schema = strip_keywords(object_schema(fn.get("parameters")), profile.json_schema_sanitizer)
        tool: dict[str, Any] = {"name": shorten_tool_name(name), "input_schema": schema}
        if isinstance(fn.get("description"), str):
            tool["description"] = fn["description"]
        if isinstance(fn.get("strict"), bool):
            tool["strict"] = fn["strict"]
        tools.append(tool)
        names.append(name)
    return tools, names


def _allowed_tools(choice: Any) -> set[str] | None:
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return None
    spec = choice.get("allowed_tools") or {}
    return {str((t.get("function") or {}).get("name") or t.get("name")) for t in spec.get("tools") or []}


def _tool_choice(req: ChatRequest, names: list[str], notes: list[str]) -> dict[str, Any] | None:
    choice = req.tool_choice if req.tool_choice is not None else req.function_call
    out: dict[str, Any] | None = None
    if choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict):
        out = _named_choice(choice, names, notes)
    if req.parallel_tool_calls is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _named_choice(choice: dict[str, Any], names: list[str], notes: list[str]) -> dict[str, Any] | None:
    if choice.get("type") == "allowed_tools":
        mode = (choice.get("allowed_tools") or {}).get("mode")
        return {"type": "any" if mode == "required" else "auto"}
    name = (choice.get("function") or {}).get("name") or choice.get("name")
    if name in names:
        return {"type": "tool", "name": shorten_tool_name(str(name))}
    notes.append("tool_choice_dropped")
    return None


def _response_format(
    out: dict[str, Any], req: ChatRequest, profile: CapabilityProfile, tools: list[dict[str, Any]], system: list[str]
) -> str | None:
    """``response_format`` → ``output_config.format``, a forced ``json_output`` tool, or a system line."""
    fmt = req.response_format or {}
    if fmt.get("type") == "json_object":
        system.append(JSON_OBJECT_LINE)
        return None
    spec = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return None
    if profile.supports_structured_outputs:
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return None
    if tools:
        system.append(f"{JSON_OBJECT_LINE} It must match this JSON schema: {msgspec.json.encode(schema).decode()}")
        return None
    description = "Return the final answer by calling this tool with it as the input."
    tools.append({"name": JSON_TOOL, "description": description, "input_schema": object_schema(schema)})
    return JSON_TOOL
