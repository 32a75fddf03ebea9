"""Anthropic Messages request → OpenAI Chat Completions request (conversion.md §3)."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.convert.a2o_messages import render_messages, validate_messages
from gateway.convert.a2o_websearch import (
    WEB_SEARCH,
    WEB_SEARCH_FUNCTION,
    WebSearchSpec,
    is_web_search_tool,
    web_search_spec,
)
from gateway.convert.ids import hash_user, shorten_tool_name, tool_name_map
from gateway.convert.profile import CapabilityProfile
from gateway.convert.requests_o2a import JSON_TOOL
from gateway.convert.sanitize import sanitize_messages
from gateway.convert.schema import object_schema, strictify, strip_keywords
from gateway.convert.thinking import openai_reasoning
from gateway.convert.types import Converted, ResponseHints
from gateway.convert.validation import decode_as
from gateway.protocols.anthropic import MessagesRequest, ToolChoice

__all__ = ["anthropic_request_to_openai"]

BILLING_HEADER = "x-anthropic-billing-header:"
_DROPPED_KEYS = ("context_management", "container", "mcp_servers", "service_tier", "inference_geo")


def anthropic_request_to_openai(
    body: dict[str, Any], *, upstream_model: str, profile: CapabilityProfile, web_search: bool = False
) -> Converted:
    """``web_search``: Relay runs web search (``gateway.websearch``), so a ``web_search_*`` server tool is
    offered as a ``web_search`` function and ``Converted.web_search`` says what the client asked of it."""
    req: MessagesRequest = decode_as(body, MessagesRequest)
    validate_messages(req.messages, profile)
    notes: list[str] = [f"{key}_dropped" for key in _DROPPED_KEYS if key in body]
    tools, names, search = _tools(req, profile, notes, web_search)
    folded = [_fold_system(m) for m in body["messages"]]
    messages = render_messages(
        sanitize_messages(folded, for_anthropic=False, notes=notes),
        profile,
        shorten_tool_name,
        notes,
        search_function=search is not None,
    )
    if messages and messages[-1]["role"] == "assistant" and not profile.supports_assistant_prefill:
        messages.pop()
        notes.append("prefill_dropped")
    schema = _json_schema(req)
    json_tool = _json_output_tool(schema, tools, names, profile)
    system = _system(req, schema if not profile.supports_structured_outputs and json_tool is None else None)
    out: dict[str, Any] = {"model": upstream_model, "messages": ([system] if system else []) + messages}
    _limits(out, req, profile, notes)
    effort = _effort(req)
    reasoning, reasoning_on = openai_reasoning(req.thinking, effort, profile)
    out.update(reasoning)
    if req.thinking is not None and req.thinking.type in ("enabled", "adaptive") and not reasoning_on:
        notes.append("thinking_dropped")
    elif effort is not None and not reasoning_on:
        notes.append("effort_dropped")  # thinking is off: the upstream has nothing to spend an effort on
    if reasoning_on and req.thinking is not None and req.thinking.display not in (None, "omitted"):
        notes.append("thinking_display_dropped")  # "omitted" is honoured; an upstream's reasoning is never summarised
    _sampling(out, req, profile, reasoning_on, notes)
    if json_tool is not None:
        out["tools"] = tools
        out["tool_choice"] = {"type": "function", "function": {"name": json_tool}}
    elif tools:
        out["tools"] = tools
        _tool_choice(out, req.tool_choice, names, profile, notes)
    elif req.tool_choice is not None:
        notes.append("tool_choice_dropped")
    if schema is not None and profile.supports_structured_outputs:
        out["response_format"] = _response_format(schema)
    if req.metadata is not None and req.metadata.user_id:
        out["user"] = hash_user(req.metadata.user_id)[:64]
    if req.stream:
        out["stream"] = True
        if profile.supports_stream_options:
            out["stream_options"] = {"include_usage": True}
    hints = ResponseHints(
        tool_names=tool_name_map(names),
        stop_sequences=tuple(req.stop_sequences or ()),
        omit_reasoning=req.thinking is not None and req.thinking.display == "omitted",
        json_tool=json_tool,
        think_tags=profile.think_tags,
        cumulative_tool_args=profile.tool_args_may_be_cumulative,
        stream_all_tools_live=profile.stream_all_tools_live,
        provider=upstream_model,
    )
    return Converted(body=out, notes=tuple(dict.fromkeys(notes)), hints=hints, web_search=search)


def _fold_system(msg: dict[str, Any]) -> dict[str, Any]:
    """A mid-conversation ``role: "system"`` message becomes a ``<system-reminder>`` user text."""
    if msg.get("role") != "system":
        return msg
    content = msg.get("content")
    text = content if isinstance(content, str) else "\n\n".join(str(b.get("text", "")) for b in content or [])
    if not text.strip():
        return {"role": "user", "content": []}
    return {"role": "user", "content": [{"type": "text", "text": f"<system-reminder>\n{text}\n</system-reminder>"}]}


def _system(req: MessagesRequest, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(req.system, str):
        parts = [req.system]
    else:
        parts = [str(b.get("text", "")) for b in req.system or [] if b.get("type", "text") == "text"]
    parts = [p for p in parts if p.strip() and not p.startswith(BILLING_HEADER)]
    if schema is not None:
        encoded = msgspec.json.encode(schema).decode()
        parts.append(f"Respond only with a JSON object that matches this JSON schema:\n{encoded}")
    return {"role": "system", "content": "\n\n".join(parts)} if parts else None


def _limits(out: dict[str, Any], req: MessagesRequest, profile: CapabilityProfile, notes: list[str]) -> None:
    wanted = req.max_tokens if req.max_tokens is not None else profile.default_max_tokens
    if wanted <= 0:
        notes.append("max_tokens_zero")
        wanted = 1
    cap = profile.max_output_tokens
    if cap is not None and wanted > cap:
        notes.append("max_tokens_clamped")
        wanted = cap
    out[profile.max_tokens_field] = wanted
    stops = [s for s in req.stop_sequences or [] if s]
    limit = profile.max_stop_sequences
    if limit is not None and len(stops) > limit:
        notes.append("stop_sequences_truncated")
        stops = stops[:limit]
    if stops:
        out["stop"] = stops


def _sampling(
    out: dict[str, Any], req: MessagesRequest, profile: CapabilityProfile, reasoning_on: bool, notes: list[str]
) -> None:
    drop = not profile.supports_sampling_params or (
        reasoning_on and profile.reasoning_dialect in ("openai", "deepseek")
    )
    for key in ("temperature", "top_p"):
        value = getattr(req, key)
        if value is None:
            continue
        if drop:
            notes.append(f"{key}_dropped")
        else:
            out[key] = value
    if req.top_k is not None:
        if profile.supports_top_k:
            out["top_k"] = req.top_k
        else:
            notes.append("top_k_dropped")


def _effort(req: MessagesRequest) -> str | None:
    """The effort asked last: on the latest system message that sets one (Claude Code 2.1.3xx changes it
    mid-conversation that way), else the top-level ``output_config``."""
    for msg in reversed(req.messages):
        if msg.role == "system" and msg.output_config is not None and msg.output_config.effort:
            return msg.output_config.effort
    return req.output_config.effort if req.output_config is not None else None


def _json_schema(req: MessagesRequest) -> dict[str, Any] | None:
    fmt = (req.output_config.format if req.output_config is not None else None) or req.output_format
    if not fmt or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        return None
    schema: dict[str, Any] = fmt["schema"]
    return schema


def _json_output_tool(
    schema: dict[str, Any] | None, tools: list[dict[str, Any]], names: list[str], profile: CapabilityProfile
) -> str | None:
    """Structured output for an upstream without ``response_format: json_schema``: a forced ``json_output``
    function whose arguments are the answer (they come back as the text block), so the JSON has the schema's
    shape instead of a prompt's hope. With the client's own tools a forced call would block them: then the
    schema goes in the system prompt."""
    if schema is None or profile.supports_structured_outputs or tools:
        return None
    params = strip_keywords(object_schema(schema), profile.json_schema_sanitizer)
    description = "Return the final answer by calling this function with it as the arguments."
    function = {"name": JSON_TOOL, "description": description, "parameters": params}
    tools.append({"type": "function", "function": function})
    names.append(JSON_TOOL)
    return JSON_TOOL


def _response_format(schema: dict[str, Any]) -> dict[str, Any]:
    strict = strictify(schema)
    return {"type": "json_schema", "json_schema": {"name": "structured_output", "schema": strict, "strict": True}}


DEFERRED_PLACEHOLDERS = frozenset({"DeferredToolPlaceholder"})
"""Claude Code 2.1.3xx's stand-in for its deferred tools (``defer_loading: true``, never callable). The real
deferred tools are sent as plain functions (an OpenAI upstream has no deferral: every tool is loaded),
and a ToolSearch result's ``tool_reference`` blocks become text naming them (``a2o_messages``)."""


def _tools(
    req: MessagesRequest, profile: CapabilityProfile, notes: list[str], web_search: bool
) -> tuple[list[dict[str, Any]], list[str], WebSearchSpec | None]:
    tools: list[dict[str, Any]] = []
    names: list[str] = []
    search: WebSearchSpec | None = None
    for raw in req.tools or []:
        kind = raw.get("type")
        name = raw.get("name")
        if is_web_search_tool(raw):
            search = search or _web_search(raw, req, web_search, notes)
            continue
        if (kind not in (None, "custom")) or not isinstance(name, str):
            notes.append("server_tool_dropped")
            continue
        if name in DEFERRED_PLACEHOLDERS and raw.get("defer_loading") is True:
            notes.append("deferred_placeholder_dropped")  # "never call this": an upstream would offer it
            continue
        params = strip_keywords(object_schema(raw.get("input_schema")), profile.json_schema_sanitizer)
        function: dict[str, Any] = {"name": shorten_tool_name(name), "parameters": params}
        if isinstance(raw.get("description"), str):
            function["description"] = raw["description"]
        if isinstance(raw.get("strict"), bool):
            function["strict"] = raw["strict"]
        tools.append({"type": "function", "function": function})
        names.append(name)
    if search is not None:
        tools.append(WEB_SEARCH_FUNCTION)
        names.append(WEB_SEARCH)
    return tools, names, search


def _web_search(raw: dict[str, Any], req: MessagesRequest, web_search: bool, notes: list[str]) -> WebSearchSpec | None:
    """The spec of a web search Relay runs, or None (a note says why the server tool is dropped)."""
    if not web_search:
        notes += ["server_tool_dropped", "web_search_unavailable"]  # no backend: no function calling into the void
        return None
    if any(t.get("name") == WEB_SEARCH and t.get("type") in (None, "custom") for t in req.tools or []):
        notes.append("server_tool_dropped")  # the client's own web_search tool wins
        return None
    return web_search_spec(raw)


def _tool_choice(
    out: dict[str, Any], choice: ToolChoice | None, names: list[str], profile: CapabilityProfile, notes: list[str]
) -> None:
    if choice is None:
        return
    if choice.type == "auto":
        out["tool_choice"] = "auto"
    elif choice.type == "any":
        out["tool_choice"] = "required"
    elif choice.type == "none":
        out["tool_choice"] = "none"
    elif choice.type == "tool" and choice.name in names:
        out["tool_choice"] = {"type": "function", "function": {"name": shorten_tool_name(choice.name)}}
    else:
        notes.append("tool_choice_dropped")
    if choice.disable_parallel_tool_use and profile.supports_parallel_tool_calls_param:
        out["parallel_tool_calls"] = False
