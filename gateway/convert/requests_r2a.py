"""OpenAI Responses request → Anthropic Messages request, the internal form of every converted call.

The Responses door converts through Anthropic Messages, the richer of the two wire forms (signed
thinking, tool use and results, images and documents): for an Anthropic upstream the result is
finished by :func:`gateway.convert.requests_r2x.finish_for_anthropic`; for an OpenAI-compatible
one it goes through the same ``anthropic_request_to_openai`` that serves Claude Code, profile
and all. The form is *neutral*: ``max_tokens`` stays absent when the client set no
``max_output_tokens``, and reasoning is ``thinking: {"type": "adaptive"}`` plus
``output_config.effort``, fitted to the upstream by whichever converter finishes the request.

Decisions (recorded in ``docs/responses.md``):
- Namespace tools are flattened to ``<namespace>__<name>``, custom (freeform) tools become a
  function with one string parameter ``input``; both are restored on the way back.
- Hosted tools: ``web_search*``, ``local_shell``, ``shell``, ``apply_patch`` (hosted),
  ``tool_search`` and ``programmatic_tool_calling`` are dropped with a note (Codex sends
  ``web_search`` on every turn; without them the model still answers, from what it knows);
  ``file_search``, ``code_interpreter``, ``computer*``, ``image_generation`` and ``mcp`` are
  refused with a 400, because an answer without them would be wrong.
- Hosted-tool items replayed as input are dropped with a note; ``item_reference`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.convert.ids import mint_signature, sanitize_tool_id, shorten_tool_name
from gateway.convert.jsonargs import parse_arguments
from gateway.convert.r_parts import file_block, image_block
from gateway.convert.schema import object_schema
from gateway.convert.validation import decode_as, field_error
from gateway.protocols.responses import ECHO_FIELDS, ResponsesRequest

__all__ = ["JSON_OBJECT_LINE", "ResponsesConverted", "ToolIdentity", "responses_request_to_anthropic"]

JSON_OBJECT_LINE = "Respond with a single JSON object only."
DROPPED_HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    }
)
REFUSED_HOSTED_TOOLS = frozenset(
    {"file_search", "code_interpreter", "computer", "computer_use", "computer_use_preview", "image_generation", "mcp"}
)
_HOSTED_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "tool_search_call",
        "tool_search_output",
        "compaction",
    }
)
Block = dict[str, Any]
Carry = Callable[[Any], "dict[str, str] | None"]


@dataclass(frozen=True, slots=True)
class ToolIdentity:
    """A client tool as the Responses client named it: ``kind`` is ``function`` or ``custom``."""

    kind: str
    name: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class ResponsesConverted:
    """The neutral Anthropic body, notes, and what the reply side needs to speak Responses again."""

    body: dict[str, Any]
    notes: tuple[str, ...] = ()
    tools: dict[str, ToolIdentity] = field(default_factory=dict)
    """Upstream tool name → the client's tool."""
    echo: dict[str, Any] = field(default_factory=dict)
    """Request fields the Response object repeats."""
    include_reasoning: bool = False
    """The client asked for ``reasoning.encrypted_content``."""
    paths: dict[tuple[int, int], str] = field(default_factory=dict)
    """(message, block) of the body → where the client sent it, for errors raised further on."""


def flat_name(name: str, namespace: str | None) -> str:
    return shorten_tool_name(f"{namespace}__{name}" if namespace else name)


def responses_request_to_anthropic(body: dict[str, Any], *, carry: Carry) -> ResponsesConverted:
    """``carry`` opens a reasoning item's ``encrypted_content`` (:func:`gateway.convert.envelope.unseal`)."""
    req: ResponsesRequest = decode_as(body, ResponsesRequest)
    notes: list[str] = []
    tools, identities = _tools(req.tools or [], notes)
    conv = _Items(carry, notes)
    conv.instructions(req.instructions)
    if isinstance(req.input, str):
        conv.turn("user", [{"type": "text", "text": req.input}], "input")
    else:
        for i, item in enumerate(req.input or []):
            conv.item(i, item)
    out: dict[str, Any] = {"messages": conv.messages}
    if req.max_output_tokens is not None:
        out["max_tokens"] = req.max_output_tokens
    tools = _tool_choice(out, req, tools, identities)
    if tools:
        out["tools"] = tools
    _text_format(out, req.text, conv.system)
    if conv.system:
        out["system"] = [{"type": "text", "text": text} for text in conv.system]
    effort = (req.reasoning or {}).get("effort")
    if isinstance(effort, str) and effort != "none":
        out["thinking"] = {"type": "adaptive"}
        out.setdefault("output_config", {})["effort"] = effort
    for key in ("temperature", "top_p"):
        if getattr(req, key) is not None:
            out[key] = getattr(req, key)
    user = req.safety_identifier or req.user
    if user:
        out["metadata"] = {"user_id": user}
    if req.stream:
        out["stream"] = True
    echo = {k: body[k] for k in ECHO_FIELDS if k in body}
    include = "reasoning.encrypted_content" in (req.include or [])
    return ResponsesConverted(out, tuple(dict.fromkeys(notes)), identities, echo, include, conv.paths)


# -- tools --------------------------------------------------------------------------------------


def _function(tool: dict[str, Any], namespace: str | None, where: str) -> tuple[Block, ToolIdentity]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise field_error(f"{where}.name", "field required")
    kind = tool.get("type")
    out: Block = {"name": flat_name(name, namespace)}
    description = tool.get("description")
    if kind == "custom":
        out["input_schema"] = _custom_schema(tool.get("format"))
    else:
        out["input_schema"] = object_schema(tool.get("parameters"))
        if isinstance(tool.get("strict"), bool):
            out["strict"] = tool["strict"]
    if isinstance(description, str) and description:
        out["description"] = description
    return out, ToolIdentity("custom" if kind == "custom" else "function", name, namespace)


def _custom_schema(fmt: Any) -> dict[str, Any]:
    """A freeform tool's raw text input as one string parameter; a grammar is described to the model."""
    about = "The tool's raw input text (not JSON)."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        about += f" It must match this {fmt.get('syntax') or 'lark'} grammar:\n{fmt['definition']}"
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": about}},
        "required": ["input"],
    }


def _tools(raw: list[dict[str, Any]], notes: list[str]) -> tuple[list[Block], dict[str, ToolIdentity]]:
    tools: list[Block] = []
    identities: dict[str, ToolIdentity] = {}
    for i, tool in enumerate(raw):
        kind, where = tool.get("type"), f"tools[{i}]"
        specs: list[tuple[dict[str, Any], str | None, str]]
        if kind in ("function", "custom"):
            specs = [(tool, None, where)]
        elif kind == "namespace":
            ns = str(tool.get("name") or "")
            specs = [(t, ns, f"{where}.tools[{j}]") for j, t in enumerate(tool.get("tools") or [])]
        elif kind in DROPPED_HOSTED_TOOLS:
            notes.append(f"{kind}_tool_dropped")
            continue
        elif kind in REFUSED_HOSTED_TOOLS:
            raise field_error(f"{where}.type", f"the hosted tool '{kind}' is not available for this model")
        else:
            raise field_error(f"{where}.type", f"unknown tool type '{kind}'")
        for spec, namespace, at in specs:
            block, identity = _function(spec, namespace, at)
            tools.append(block)
            identities[block["name"]] = identity
    return tools, identities


def _tool_choice(
    out: dict[str, Any], req: ResponsesRequest, tools: list[Block], identities: dict[str, ToolIdentity]
) -> list[Block]:
    """Set ``tool_choice`` and return the tools offered (``allowed_tools`` narrows them)."""
    raw = req.tool_choice
    choice: dict[str, Any] | None = None
    if raw in ("auto", "none"):
        choice = {"type": raw}
    elif raw == "required":
        choice = {"type": "any"}
    elif isinstance(raw, dict):
        kind = raw.get("type")
        if kind in ("function", "custom"):
            name = flat_name(str(raw.get("name") or ""), raw.get("namespace"))
            if name not in identities:
                raise field_error("tool_choice.name", f"no tool named '{raw.get('name')}' in tools")
            choice = {"type": "tool", "name": name}
        elif kind == "allowed_tools":
            allowed = {flat_name(str(t.get("name") or ""), t.get("namespace")) for t in raw.get("tools") or []}
            tools = [t for t in tools if t["name"] in allowed]
            choice = {"type": "any" if raw.get("mode") == "required" else "auto"}
        elif kind is not None:
            raise field_error("tool_choice.type", f"the hosted tool '{kind}' is not available for this model")
    elif raw is not None:
        raise field_error("tool_choice", "must be 'auto', 'none', 'required' or an object")
    if req.parallel_tool_calls is False and tools and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None and tools:
        out["tool_choice"] = choice
    return tools


def _text_format(out: dict[str, Any], text: dict[str, Any] | None, system: list[str]) -> None:
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        system.append(JSON_OBJECT_LINE)
    elif fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise field_error("text.format.schema", "field required")
        out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": fmt["schema"]}


# -- items ----------------------------------------------------------------------------------------


class _Items:
    """Input items → system texts and Anthropic turns (merged and paired later by the sanitizer)."""

    def __init__(self, carry: Carry, notes: list[str]) -> None:
        self.carry = carry
        self.notes = notes
        self.system: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.paths: dict[tuple[int, int], str] = {}

    def turn(self, role: str, blocks: list[Block], at: str, *, per_part: bool = False) -> None:
        """Append a turn; remember where each block came from (``at``, or ``at[j]`` for content parts)."""
        if not blocks:
            return
        for j in range(len(blocks)):
            self.paths[(len(self.messages), j)] = f"{at}[{j}]" if per_part else at
        self.messages.append({"role": role, "content": blocks})

    def instructions(self, value: str | list[dict[str, Any]] | None) -> None:
        if isinstance(value, str):
            if value.strip():
                self.system.append(value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.item(i, item, where="instructions")

    def item(self, i: int, item: dict[str, Any], where: str = "input") -> None:
        at = f"{where}[{i}]"
        kind = item.get("type")
        if kind is None or kind == "message":
            self._message(item, at)
        elif kind in ("function_call", "custom_tool_call"):
            self.turn("assistant", [self._call(item, at)], at)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise field_error(f"{at}.call_id", "field required")
            content = self._result_content(item.get("output"), f"{at}.output")
            result = {"type": "tool_result", "tool_use_id": sanitize_tool_id(call_id), "content": content}
            self.turn("user", [result], f"{at}.output")
        elif kind == "reasoning":
            self.turn("assistant", self._reasoning(item), at)
        elif kind == "item_reference":
            raise field_error(f"{at}.type", "item references are not supported here; send the item itself")
        elif kind in _HOSTED_ITEMS:
            self.notes.append("hosted_tool_item_dropped")
        else:
            raise field_error(f"{at}.type", f"unknown input item type '{kind}'")

    def _message(self, item: dict[str, Any], at: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role in ("system", "developer"):
            text = content if isinstance(content, str) else "\n".join(_texts(content))
            if text.strip():
                self.system.append(text)
        elif role in ("user", "assistant"):
            self.turn(str(role), self._parts(content, f"{at}.content"), f"{at}.content", per_part=True)
        else:
            raise field_error(f"{at}.role", f"unknown role '{role}'")

    def _parts(self, content: Any, at: str) -> list[Block]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}] if content else []
        if not isinstance(content, list):
            raise field_error(at, "must be a string or an array of content parts")
        blocks: list[Block] = []
        for j, part in enumerate(content):
            kind, where = part.get("type") if isinstance(part, dict) else None, f"{at}[{j}]"
            if kind in ("input_text", "output_text", "text"):
                blocks.append({"type": "text", "text": str(part.get("text") or "")})
            elif kind == "refusal":
                blocks.append({"type": "text", "text": str(part.get("refusal") or "")})
            elif kind == "input_image":
                blocks.append(image_block(part, where))
            elif kind == "input_file":
                blocks.append(file_block(part, where))
            elif kind == "input_audio":
                raise field_error(f"{where}.type", "audio input is not supported for this model")
            else:
                raise field_error(f"{where}.type", f"unknown content part type '{kind}'")
        return blocks

    def _call(self, item: dict[str, Any], at: str) -> Block:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise field_error(f"{at}.call_id", "field required")
        if not isinstance(name, str) or not name:
            raise field_error(f"{at}.name", "field required")
        if item["type"] == "custom_tool_call":
            args: Any = {"input": str(item.get("input") or "")}
        else:
            args = parse_arguments(item.get("arguments"))
        tool_name = flat_name(name, item.get("namespace"))
        return {"type": "tool_use", "id": sanitize_tool_id(call_id), "name": tool_name, "input": args}

    def _result_content(self, output: Any, at: str) -> str | list[Block]:
        if isinstance(output, str) or output is None:
            return output or ""
        return self._parts(output, at)

    def _reasoning(self, item: dict[str, Any]) -> list[Block]:
        """A sealed carry restores the upstream's own block; bare text becomes unsigned reasoning."""
        carry = self.carry(item.get("encrypted_content"))
        if carry is not None:
            if carry.get("k") == "thinking" and carry.get("s"):
                return [{"type": "thinking", "thinking": carry.get("t", ""), "signature": carry["s"]}]
            if carry.get("k") == "redacted" and carry.get("d"):
                return [{"type": "redacted_thinking", "data": carry["d"]}]
            if carry.get("t"):
                return [{"type": "thinking", "thinking": carry["t"], "signature": mint_signature("relay")}]
        text = "".join(_texts(item.get("summary"))) + "".join(_texts(item.get("content")))
        if not text:
            return []
        # Unsigned: dropped for Anthropic upstreams, replayed as reasoning_content where a profile wants it.
        return [{"type": "thinking", "thinking": text, "signature": mint_signature("relay")}]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [str(p.get("text", "")) for p in content or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
