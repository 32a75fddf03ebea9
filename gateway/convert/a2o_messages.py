"""A ``messages`` → O ``messages`` (conversion.md §3.2): validation, then rendering.

Validation runs on the client's list (so errors name the client's indices); rendering runs on
the sanitized list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gateway.convert.a2o_websearch import WEB_SEARCH, search_call, search_pairs, search_result_message, search_text
from gateway.convert.profile import CapabilityProfile
from gateway.convert.validation import decode_as, field_error
from gateway.protocols.anthropic import (
    Base64Source,
    Block,
    ContentSource,
    DocumentBlock,
    FileSource,
    ImageBlock,
    Message,
    RedactedThinkingBlock,
    SearchResultBlock,
    TextBlock,
    TextSource,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UrlSource,
)

__all__ = ["is_server_block", "render_messages", "validate_messages"]

_BLOCK_TYPES: dict[str, type[Block]] = {
    "text": TextBlock,
    "image": ImageBlock,
    "document": DocumentBlock,
    "search_result": SearchResultBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": RedactedThinkingBlock,
}
"""The :data:`Block` struct of each known tag. A block converts to its own struct, not to the union:
msgspec caches a struct's type info but rebuilds a union's on every ``convert`` (tens of µs a block)."""
KNOWN_BLOCKS = frozenset(_BLOCK_TYPES)
_SERVER_BLOCKS = frozenset({"server_tool_use", "mcp_tool_use", "container_upload", "tool_reference"})
NO_VISION = "[image omitted: model has no image input]"
NO_PDF = "[document omitted: model has no PDF input]"
Part = dict[str, Any]
OMsg = dict[str, Any]


def _typed(block: dict[str, Any]) -> Any:
    return msgspec.convert(block, _BLOCK_TYPES[block["type"]])


def is_server_block(kind: str) -> bool:
    return kind in _SERVER_BLOCKS or kind.endswith(("_tool_result", "_tool_use"))


def validate_messages(messages: list[Message], profile: CapabilityProfile) -> None:
    for i, msg in enumerate(messages):
        if msg.role not in ("user", "assistant", "system"):
            raise field_error(f"messages.{i}.role", f"unknown role '{msg.role}'")
        if isinstance(msg.content, list):
            for j, block in enumerate(msg.content):
                _validate_block(block, f"messages.{i}.content.{j}", profile, nested=False)


def _validate_block(block: dict[str, Any], where: str, profile: CapabilityProfile, *, nested: bool) -> None:
    kind = block.get("type")
    if not isinstance(kind, str):
        raise field_error(f"{where}.type", "field required")
    if is_server_block(kind):
        return
    if kind not in KNOWN_BLOCKS:
        raise field_error(f"{where}.type", f"unknown block type '{kind}'")
    typed: Any = decode_as(block, _BLOCK_TYPES[kind], where)
    if isinstance(typed, ImageBlock | DocumentBlock) and isinstance(typed.source, FileSource):
        raise field_error(f"{where}.source", "file sources are not supported by this relay")
    if isinstance(typed, DocumentBlock) and not nested:
        _validate_document(typed, where, profile)
    if isinstance(typed, ToolResultBlock) and isinstance(typed.content, list):
        for k, inner in enumerate(typed.content):
            _validate_block(inner, f"{where}.content.{k}", profile, nested=True)


def _validate_document(doc: DocumentBlock, where: str, profile: CapabilityProfile) -> None:
    if isinstance(doc.source, UrlSource):
        raise field_error(f"{where}.source", "document URL sources are not supported by this model")
    if isinstance(doc.source, Base64Source) and not profile.supports_pdf_input:
        raise field_error(f"{where}.source", "PDF input not supported by this model")


def _text_of(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text", "")) for b in content or [] if b.get("type") == "text")


class MessageRenderer:
    """Renders sanitized A messages for one O upstream."""

    def __init__(
        self,
        profile: CapabilityProfile,
        rename: Callable[[str], str],
        notes: list[str],
        *,
        search_function: bool = False,
    ) -> None:
        self.profile = profile
        self.rename = rename
        self.notes = notes
        self.search_function = search_function
        """Relay offers a ``web_search`` function: past searches render as its calls and results."""
        self.tool_names: dict[str, str] = {}
        self.assistant_turns = 0

    def render(self, messages: list[dict[str, Any]]) -> list[OMsg]:
        out: list[OMsg] = []
        for msg in messages:
            if msg["role"] == "assistant" and any(_is_search(b) for b in msg["content"]):
                out.extend(self._searched(msg["content"]))
                continue
            blocks = [_typed(b) for b in msg["content"] if b.get("type") in KNOWN_BLOCKS]
            if len(blocks) != len(msg["content"]):
                self.notes.append("server_block_dropped")
            out.extend(self._assistant(blocks) if msg["role"] == "assistant" else self._user(blocks))
        return out

    # -- user turns ---------------------------------------------------------------------------

    def _user(self, blocks: list[Any]) -> list[OMsg]:
        tools: list[OMsg] = []
        moved: list[Part] = []
        parts: list[Part] = []
        for block in blocks:
            if isinstance(block, ToolResultBlock):
                tools.append(self._tool_message(block, moved))
            else:
                parts.extend(self._part(block))
        parts = moved + parts
        if not parts:
            return tools
        if all(p["type"] == "text" for p in parts):
            return [*tools, {"role": "user", "content": "\n\n".join(p["text"] for p in parts)}]
        return [*tools, {"role": "user", "content": parts}]

    def _tool_message(self, block: ToolResultBlock, moved: list[Part]) -> OMsg:
        texts: list[str] = []
        media: list[Part] = []
        loaded: list[str] = []
        for inner in [] if isinstance(block.content, str) else block.content or []:
            if inner.get("type") == "tool_reference" and isinstance(inner.get("tool_name"), str):
                loaded.append(self.rename(inner["tool_name"]))
                continue
            typed = _typed(inner) if inner.get("type") in KNOWN_BLOCKS else None
            for part in self._part(typed, nested=True) if typed is not None else []:
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
        if loaded:  # a ToolSearch result: Anthropic loads these tools; here every tool is already offered
            texts.append(f"Tools loaded and available to call now: {', '.join(loaded)}")
        text = block.content if isinstance(block.content, str) else "\n".join(texts)
        if media:
            text = f"{text}\n[image attached below]" if text else "[image attached below]"
            label = self.tool_names.get(block.tool_use_id, block.tool_use_id)
            moved.extend([{"type": "text", "text": f"Images returned by tool {label}:"}, *media])
        text = text or "(no output)"
        return {
            "role": "tool",
            "tool_call_id": block.tool_use_id,
            "content": f"Error: {text}" if block.is_error else text,
        }

    def _part(self, block: Any, *, nested: bool = False) -> list[Part]:
        if isinstance(block, TextBlock):
            return [{"type": "text", "text": block.text}] if block.text.strip() else []
        if isinstance(block, ImageBlock):
            return [self._image(block)]
        if isinstance(block, DocumentBlock):
            return self._document(block, nested=nested)
        if isinstance(block, SearchResultBlock):
            body = "\n".join(t.text for t in block.content)
            return [{"type": "text", "text": f"{block.title}\n{block.source}\n{body}"}]
        return []

    def _image(self, block: ImageBlock) -> Part:
        if not self.profile.supports_image_input:
            self.notes.append("image_dropped")
            return {"type": "text", "text": NO_VISION}
        src = block.source
        url = f"data:{src.media_type};base64,{src.data}" if isinstance(src, Base64Source) else getattr(src, "url", "")
        return {"type": "image_url", "image_url": {"url": url}}

    def _document(self, block: DocumentBlock, *, nested: bool) -> list[Part]:
        src = block.source
        title = f"{block.title}\n\n" if block.title else ""
        if isinstance(src, TextSource):
            return [{"type": "text", "text": title + src.data}]
        if isinstance(src, ContentSource):
            return [{"type": "text", "text": title + _text_of(src.content)}]
        if isinstance(src, Base64Source) and self.profile.supports_pdf_input:
            filename = block.title or "document.pdf"
            data = f"data:{src.media_type};base64,{src.data}"
            return [{"type": "file", "file": {"filename": filename, "file_data": data}}]
        self.notes.append("pdf_dropped")
        return [{"type": "text", "text": NO_PDF}]

    # -- assistant turns ----------------------------------------------------------------------

    def _searched(self, content: list[dict[str, Any]]) -> list[OMsg]:
        """An assistant turn with web searches (``a2o_websearch``): with Relay's search function, one
        assistant message per run of searches, each followed by the searches' results; else text."""
        kept, paired = search_pairs(content)
        out: list[OMsg] = []
        segment: list[Any] = []
        calls: list[Part] = []
        results: list[OMsg] = []
        for i, block in enumerate(kept):
            result = paired.get(i)
            if result is not None and self.search_function:
                calls.append(search_call(block))
                results.append(search_result_message(block, result))
                continue
            if result is not None:
                segment.append(TextBlock(text=search_text(block, result)))
                continue
            if results:  # what the model said after reading the results
                out += [*self._assistant(segment, calls), *results]
                segment, calls, results = [], [], []
            if block.get("type") in KNOWN_BLOCKS:
                segment.append(_typed(block))
            else:
                self.notes.append("server_block_dropped")
        return [*out, *self._assistant(segment, calls), *results]

    def _assistant(self, blocks: list[Any], searches: list[Part] | None = None) -> list[OMsg]:
        self.assistant_turns += 1
        text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
        reasoning = "".join(b.thinking for b in blocks if isinstance(b, ThinkingBlock))
        calls = [*(searches or ()), *(self._tool_call(b) for b in blocks if isinstance(b, ToolUseBlock))]
        msg: OMsg = {"role": "assistant", "content": text or None}
        if calls:
            msg["tool_calls"] = calls
            if not text and not self.profile.null_assistant_content:
                msg["content"] = ""
        if self.profile.requires_reasoning_replay:
            msg["reasoning_content"] = reasoning or f"(reasoning not kept, turn {self.assistant_turns})"
        elif reasoning and self.profile.reasoning_dialect == "deepseek":
            msg["reasoning_content"] = reasoning
        if not text and not calls and "reasoning_content" not in msg:
            self.notes.append("empty_assistant_dropped")
            return []
        return [msg]

    def _tool_call(self, block: ToolUseBlock) -> Part:
        self.tool_names[block.id] = block.name
        args = msgspec.json.encode(block.input if block.input is not None else {}).decode()
        return {"id": block.id, "type": "function", "function": {"name": self.rename(block.name), "arguments": args}}


def _is_search(block: dict[str, Any]) -> bool:
    kind = block.get("type")
    return kind == "web_search_tool_result" or (kind == "server_tool_use" and block.get("name") == WEB_SEARCH)


def render_messages(
    messages: list[dict[str, Any]],
    profile: CapabilityProfile,
    rename: Callable[[str], str],
    notes: list[str],
    *,
    search_function: bool = False,
) -> list[OMsg]:
    return MessageRenderer(profile, rename, notes, search_function=search_function).render(messages)
