"""A local ``count_tokens`` for upstreams that have none (every OpenAI-dialect one).

Counts an Anthropic Messages request with the cl100k_base tokenizer over a canonical
serialisation of system, messages (every block) and tools, plus per-message overhead, and adds a
10 % margin: undercounting makes Claude Code believe it has room and then fail hard with
"prompt is too long", overcounting only compacts a little early (conversion.md §10.1).

Why cl100k_base rather than o200k_base: it loads in 32 MB instead of 64 MB per worker (measured:
1,000 open translated streams peaked at 205 MB with o200k, over the 200 MB target), counts code and
English within 0.5 % of o200k, and counts more for CJK and Cyrillic (+44 %), the safe direction.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from functools import lru_cache
from typing import Any

import msgspec
import quicktok

from gateway.domain import Dialect

MESSAGE_OVERHEAD = 4
IMAGE_TOKENS_MAX = 1600
PDF_TOKENS_PER_PAGE = 1500
MARGIN = 1.10
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")

_encode = msgspec.json.Encoder(order="sorted").encode


@lru_cache(maxsize=1)
def _encoding() -> Any:
    return quicktok.get_encoding("cl100k_base")


def count_text(text: str) -> int:
    return int(_encoding().count(text)) if text else 0


def count_anthropic_request(body: dict[str, Any]) -> int:
    """Estimated input tokens of an Anthropic Messages request (system, messages, tools)."""
    texts: list[str] = []
    fixed = 0
    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        fixed += _blocks(system, texts)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        fixed += MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            fixed += _blocks(content, texts)
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            texts.append(str(tool.get("name", "")))
            texts.append(str(tool.get("description", "")))
            texts.append(_encode(tool.get("input_schema", {})).decode())
    total = fixed + count_text("\n".join(texts))
    return math.ceil(total * MARGIN) if total else 1


def _blocks(blocks: list[Any], texts: list[str]) -> int:
    """Append the text of each block; return the fixed cost of images and documents."""
    fixed = 0
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            texts.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            texts.append(str(block.get("name", "")))
            texts.append(_encode(block.get("input", {})).decode())
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                fixed += _blocks(content, texts)
        elif kind == "image":
            fixed += IMAGE_TOKENS_MAX
        elif kind == "document":
            fixed += _document_tokens(block.get("source"))
    return fixed


def _document_tokens(source: Any) -> int:
    if not isinstance(source, dict):
        return PDF_TOKENS_PER_PAGE
    if source.get("type") == "text":
        return count_text(str(source.get("data", "")))
    data = source.get("data")
    if source.get("type") == "base64" and isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return PDF_TOKENS_PER_PAGE
        pages = len(_PDF_PAGE.findall(raw))
        return pages * PDF_TOKENS_PER_PAGE if pages > 0 else max(len(raw) // 3, PDF_TOKENS_PER_PAGE)
    return PDF_TOKENS_PER_PAGE


def count_openai_request(body: dict[str, Any]) -> int:
    """Estimated input tokens of an OpenAI chat request (messages, text parts, tools; images fixed)."""
    texts: list[str] = []
    fixed = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        fixed += MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif isinstance(part, dict):
                    fixed += IMAGE_TOKENS_MAX
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                texts.append(_encode(call.get("function", {})).decode())
    for tool in body.get("tools") or []:
        texts.append(_encode(tool).decode())
    total = fixed + count_text("\n".join(texts))
    return math.ceil(total * MARGIN) if total else 1


def count_responses_request(body: dict[str, Any]) -> int:
    """Estimated input tokens of a Responses request (instructions, input items, tools; images fixed)."""
    texts: list[str] = []
    fixed = 0
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        texts.append(items)
        items = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        fixed += MESSAGE_OVERHEAD
        for key in ("arguments", "input", "name"):
            if isinstance(item.get(key), str):
                texts.append(item[key])
        for key in ("content", "output", "summary"):
            value = item.get(key)
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                for part in value:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif isinstance(part, dict):
                        fixed += IMAGE_TOKENS_MAX
    for tool in body.get("tools") or []:
        texts.append(_encode(tool).decode())
    total = fixed + count_text("\n".join(texts))
    return math.ceil(total * MARGIN) if total else 1


def count_inputs(value: Any) -> int:
    """Tokens of an embeddings ``input`` or a completions ``prompt``: a string, strings, or token arrays."""
    if isinstance(value, str):
        return count_text(value)
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return len(value)
        return sum(count_inputs(v) for v in value)
    return 0


def count_request(door: Dialect, body: dict[str, Any]) -> int:
    """Estimated input tokens of a request as it came through ``door``."""
    if "messages" not in body and door is Dialect.OPENAI:  # /v1/embeddings, /v1/completions
        return count_inputs(body.get("input", body.get("prompt")))
    if door is Dialect.ANTHROPIC:
        return count_anthropic_request(body)
    if door is Dialect.RESPONSES:
        return count_responses_request(body)
    return count_openai_request(body)
