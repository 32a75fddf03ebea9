"""The pure part of Relay's web search: results filtered and capped, Anthropic blocks, the stream.

No I/O. The loop (``loop.py``) buffers the whole answer, so a streamed request gets it as one
synthesized Anthropic event stream (``message_events``), made here from the final message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from gateway.convert.a2o_websearch import WEB_SEARCH, WebSearchSpec, encode_snippet
from gateway.convert.usage import usage_to_anthropic
from gateway.domain import Usage
from gateway.protocols.sse import encode_event

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_RESULTS",
    "MAX_SNIPPET_CHARS",
    "Hit",
    "error_block",
    "message_events",
    "pick",
    "query_error",
    "result_block",
    "server_tool_use",
    "with_usage",
]

MAX_RESULTS = 5
MAX_SNIPPET_CHARS = 2000
MAX_TITLE_CHARS = 300
MAX_QUERY_CHARS = 500
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result as the backend gave it."""

    url: str
    title: str
    snippet: str = ""
    published: str | None = None


def _matches(host: str, path: str, domain: str) -> bool:
    """``example.com`` covers its subdomains; ``example.com/blog`` also limits the path."""
    name, _, prefix = domain.partition("/")
    on_host = host == name or host.endswith("." + name)
    return on_host and (not prefix or path.lstrip("/").startswith(prefix))


def _allowed(url: str, spec: WebSearchSpec) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return False
    if spec.allowed_domains and not any(_matches(host, parts.path, d) for d in spec.allowed_domains):
        return False
    return not any(_matches(host, parts.path, d) for d in spec.blocked_domains)


def pick(hits: Sequence[Hit], spec: WebSearchSpec, limit: int = MAX_RESULTS) -> list[Hit]:
    """The first ``limit`` results the client's domain rules allow, each snippet and title capped."""
    out: list[Hit] = []
    for hit in hits:
        if len(out) >= limit:
            break
        if _allowed(hit.url, spec):
            title = hit.title[:MAX_TITLE_CHARS] or hit.url
            out.append(Hit(hit.url, title, hit.snippet[:MAX_SNIPPET_CHARS], hit.published))
    return out


def query_error(query: Any) -> str | None:
    """Anthropic's error code for a query Relay will not send, or None."""
    if not isinstance(query, str) or not query.strip():
        return "invalid_tool_input"
    return "query_too_long" if len(query) > MAX_QUERY_CHARS else None


def server_tool_use(tool_id: str, query: Any) -> dict[str, Any]:
    return {"type": "server_tool_use", "id": tool_id, "name": WEB_SEARCH, "input": {"query": query}}


def result_block(tool_id: str, hits: Sequence[Hit]) -> dict[str, Any]:
    content = [
        {
            "type": "web_search_result",
            "url": h.url,
            "title": h.title,
            "encrypted_content": encode_snippet(h.snippet),
            "page_age": h.published,
        }
        for h in hits
    ]
    return {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": content}


def error_block(tool_id: str, code: str) -> dict[str, Any]:
    error = {"type": "web_search_tool_result_error", "error_code": code}
    return {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": error}


def with_usage(message: dict[str, Any], usage: Usage, searches: int) -> dict[str, Any]:
    """``message`` reporting ``usage`` summed over the loop's upstream calls and its searches."""
    server = {"web_search_requests": searches, "web_fetch_requests": 0}
    return {**message, "usage": {**usage_to_anthropic(usage), "server_tool_use": server}}


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = block.get("type")
    delta: dict[str, Any] | None = None
    start = block
    extra: list[dict[str, Any]] = []
    if kind == "text":
        start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block.get("text", "")}
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        extra = [{"type": "signature_delta", "signature": block.get("signature", "")}]
    elif kind in ("tool_use", "server_tool_use"):
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": _encode(block.get("input") or {}).decode()}
    events: list[tuple[str, dict[str, Any]]] = [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
    ]
    for d in [delta] if delta is not None else []:
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}))
    for d in extra:
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def message_events(message: dict[str, Any]) -> bytes:
    """``message`` as the Anthropic event stream that says the same (every block whole, in order)."""
    usage = message.get("usage") or {}
    start_usage = {**usage, "output_tokens": 0}
    start_usage.pop("server_tool_use", None)
    head = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": head})]
    for i, block in enumerate(message.get("content") or []):
        events += _block_events(i, block)
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return b"".join(encode_event(_encode(payload), name) for name, payload in events)
