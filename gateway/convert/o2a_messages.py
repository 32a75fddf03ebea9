"""O ``messages`` → A ``system`` + ``messages`` (conversion.md §6.2).

Produces Anthropic-shaped dicts; merging of turns, tool-result ordering, orphan repair and id
sanitization are the shared sanitizer's job (:mod:`gateway.convert.sanitize`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from gateway.convert.ids import is_minted_signature, sanitize_tool_id
from gateway.convert.jsonargs import parse_arguments
from gateway.convert.validation import field_error
from gateway.protocols.openai import ChatMessage

__all__ = ["convert_messages", "data_url", "image_block"]

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
Block = dict[str, Any]


def data_url(url: str) -> tuple[str, str] | None:
    """``data:<media>;base64,<data>`` → (media, data)."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    return head.lower(), data


def image_block(part: dict[str, Any], where: str) -> Block:
    """An ``image_url`` part (its value a URL string or ``{"url": …}``) as an Anthropic image block."""
    raw = part.get("image_url")
    url = raw.get("url") if isinstance(raw, dict) else raw
    if not isinstance(url, str) or not url:
        raise field_error(f"{where}.image_url", "url required")
    parsed = data_url(url)
    if parsed is None:
        if not url.startswith(("http://", "https://")):
            raise field_error(f"{where}.image_url", "must be an http(s) or base64 data URL")
        return {"type": "image", "source": {"type": "url", "url": url}}
    media, data = parsed
    if media not in IMAGE_TYPES:
        raise field_error(f"{where}.image_url", f"unsupported image type '{media}'")
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


def _file(part: dict[str, Any], where: str) -> Block:
    raw = part.get("file")
    file: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if file.get("file_id"):
        raise field_error(f"{where}.file.file_id", "file ids are not supported; send file_data")
    parsed = data_url(str(file.get("file_data") or ""))
    if parsed is None:
        raise field_error(f"{where}.file.file_data", "must be a base64 data URL")
    media, data = parsed
    if media == "application/pdf":
        doc: Block = {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}
        if file.get("filename"):
            doc["title"] = str(file["filename"])
        return doc
    if media.startswith("text/"):
        try:
            return {"type": "text", "text": base64.b64decode(data).decode("utf-8", "replace")}
        except (binascii.Error, ValueError):
            raise field_error(f"{where}.file.file_data", "invalid base64") from None
    raise field_error(f"{where}.file.file_data", f"unsupported file type '{media}'")


def _parts(content: str | list[dict[str, Any]] | None, where: str) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[Block] = []
    for j, part in enumerate(content):
        kind, at = part.get("type"), f"{where}.{j}"
        if kind in ("text", "refusal"):
            blocks.append({"type": "text", "text": str(part.get(kind) or part.get("text") or "")})
        elif kind == "image_url":
            blocks.append(image_block(part, at))
        elif kind == "file":
            blocks.append(_file(part, at))
        elif kind == "input_audio":
            raise field_error(f"{at}.type", "audio input is not supported for this model")
        else:
            raise field_error(f"{at}.type", f"unknown content part type '{kind}'")
    return blocks


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def _carried_thinking(msg: ChatMessage) -> list[Block]:
    """Signed A thinking blocks an O client echoed back in ``thinking_blocks`` (§8.3)."""
    out: list[Block] = []
    for block in msg.thinking_blocks or []:
        kind = block.get("type")
        if kind == "redacted_thinking" and block.get("data"):
            out.append({"type": "redacted_thinking", "data": block["data"]})
        elif kind == "thinking" and block.get("signature") and not is_minted_signature(block["signature"]):
            out.append(
                {"type": "thinking", "thinking": str(block.get("thinking") or ""), "signature": block["signature"]}
            )
    return out


class _Converter:
    def __init__(self, rename: Callable[[str], str], new_id: Callable[[int, int], str]) -> None:
        self.rename = rename
        self.new_id = new_id
        self.system: list[str] = []
        self.turns: list[dict[str, Any]] = []
        self.last_function_id = ""

    def add(self, i: int, msg: ChatMessage) -> None:
        where = f"messages.{i}"
        if msg.role in ("system", "developer"):
            self.system.append(_text(msg.content))
        elif msg.role == "user":
            self.turns.append({"role": "user", "content": _parts(msg.content, f"{where}.content")})
        elif msg.role == "assistant":
            self.turns.append({"role": "assistant", "content": self._assistant(i, msg)})
        elif msg.role in ("tool", "function"):
            self.turns.append({"role": "user", "content": [self._result(msg)]})
        else:
            raise field_error(f"{where}.role", f"unknown role '{msg.role}'")

    def _assistant(self, i: int, msg: ChatMessage) -> list[Block]:
        blocks = _carried_thinking(msg)
        blocks.extend(_parts(msg.content, f"messages.{i}.content"))
        if msg.refusal:
            blocks.append({"type": "text", "text": msg.refusal})
        calls = list(msg.tool_calls or [])
        for k, call in enumerate(calls):
            tool_id = sanitize_tool_id(call.id) if call.id else self.new_id(i, k)
            name = self.rename(call.function.name)
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": name, "input": parse_arguments(call.function.arguments)}
            )
        if msg.function_call is not None and not calls:
            self.last_function_id = self.new_id(i, 0)
            fc = msg.function_call
            tool_use = {"type": "tool_use", "id": self.last_function_id, "name": self.rename(fc.name)}
            blocks.append({**tool_use, "input": parse_arguments(fc.arguments)})
        return blocks

    def _result(self, msg: ChatMessage) -> Block:
        raw_id = msg.tool_call_id if msg.role == "tool" else self.last_function_id
        text = _text(msg.content)
        return {"type": "tool_result", "tool_use_id": sanitize_tool_id(raw_id or "missing"), "content": text}


def convert_messages(
    messages: list[ChatMessage], rename: Callable[[str], str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Hoist system/developer texts (all of them, in order, §11.57); convert the rest to A turns."""
    conv = _Converter(rename, lambda i, k: f"toolu_m{i}_{k}")
    for i, msg in enumerate(messages):
        conv.add(i, msg)
    return [s for s in conv.system if s.strip()], conv.turns
