"""Anthropic's ``web_search`` server tool on an OpenAI-dialect upstream, the pure half (conversion.md §3.3).

When Relay runs web search itself (``gateway.websearch``), the server tool is offered to the model as
a plain ``web_search({"query"})`` function, and the ``server_tool_use`` / ``web_search_tool_result``
blocks the client replays in its history are rendered back as that function's call and result: the
same text the model read while Relay ran the loop, so the next turn reads (and prefix-caches) the same.
Without Relay's search they become assistant text listing the results: an upstream may refuse a call
to a function it is not offered.

``encrypted_content`` of a result Relay made carries its snippet (``rws1.`` + URL-safe base64): it is
the client's own data, so it is encoded, not sealed. A genuine Anthropic result (after a model switch)
is opaque: only its title and URL are rendered.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "WEB_SEARCH",
    "WEB_SEARCH_FUNCTION",
    "WebSearchSpec",
    "decode_snippet",
    "encode_snippet",
    "is_web_search_tool",
    "results_text",
    "search_call",
    "search_pairs",
    "search_result_message",
    "search_text",
    "web_search_spec",
]

WEB_SEARCH = "web_search"
DEFAULT_MAX_USES = 5
_SNIPPET_PREFIX = "rws1."
WEB_SEARCH_FUNCTION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": WEB_SEARCH,
        "description": (
            "Search the web for current information. Returns the top results (title, URL, date, snippet). "
            "Use it for facts that may have changed or that you do not know; cite the URLs you use."
        ),
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "The search query"}},
            "required": ["query"],
        },
    },
}
_ERRORS = {
    "max_uses_exceeded": "the search limit of this request is reached; answer from the results you already have",
    "unavailable": "the search service is unavailable right now; answer from what you know, and say so",
    "too_many_requests": "the search service is rate limited right now; answer from what you know, and say so",
    "query_too_long": "the query is too long; use a shorter one",
    "invalid_tool_input": "the call needs a non-empty string 'query'",
}


@dataclass(frozen=True, slots=True)
class WebSearchSpec:
    """What the client's ``web_search_*`` server tool asks for."""

    max_uses: int = DEFAULT_MAX_USES
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()


def is_web_search_tool(tool: dict[str, Any]) -> bool:
    kind = tool.get("type")
    return isinstance(kind, str) and kind.startswith("web_search_")


def _domains(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(d.strip().lower() for d in value if isinstance(d, str) and d.strip())


def web_search_spec(tool: dict[str, Any]) -> WebSearchSpec:
    uses = tool.get("max_uses")
    if not isinstance(uses, int) or isinstance(uses, bool) or uses <= 0:
        uses = DEFAULT_MAX_USES
    return WebSearchSpec(
        max_uses=uses,
        allowed_domains=_domains(tool.get("allowed_domains")),
        blocked_domains=_domains(tool.get("blocked_domains")),
    )


def encode_snippet(snippet: str) -> str:
    return _SNIPPET_PREFIX + base64.urlsafe_b64encode(snippet.encode()).decode()


def decode_snippet(encrypted: Any) -> str | None:
    """The snippet of a result Relay made, or None (an Anthropic-encrypted or unreadable one)."""
    if not isinstance(encrypted, str) or not encrypted.startswith(_SNIPPET_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(encrypted[len(_SNIPPET_PREFIX) :]).decode()
    except (binascii.Error, ValueError):
        return None


def _query(use: dict[str, Any]) -> str:
    data = use.get("input")
    query = data.get("query") if isinstance(data, dict) else None
    return query if isinstance(query, str) else ""


def results_text(query: str, content: Any) -> str:
    """What the model reads as the result of one search (the loop and the history render the same)."""
    if isinstance(content, dict):
        code = str(content.get("error_code") or "unavailable")
        return f"Web search error: {code}: {_ERRORS.get(code, 'the search failed')}."
    hits = [r for r in content if isinstance(r, dict)] if isinstance(content, list) else []
    if not hits:
        return f'No web results for "{query}".'
    parts = [f'Web results for "{query}":']
    for n, hit in enumerate(hits, 1):
        lines = [f"[{n}] {hit.get('title') or '(untitled)'}", f"URL: {hit.get('url') or ''}"]
        if hit.get("page_age"):
            lines.append(f"Published: {hit['page_age']}")
        snippet = decode_snippet(hit.get("encrypted_content"))
        if snippet:
            lines.append(snippet)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def search_call(use: dict[str, Any]) -> dict[str, Any]:
    """A ``server_tool_use`` block as the OpenAI tool call the model made."""
    args = msgspec.json.encode({"query": _query(use)}).decode()
    return {"id": str(use.get("id") or ""), "type": "function", "function": {"name": WEB_SEARCH, "arguments": args}}


def search_result_message(use: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """A ``web_search_tool_result`` block as the function's result message."""
    return {
        "role": "tool",
        "tool_call_id": str(use.get("id") or ""),
        "content": results_text(_query(use), result.get("content")),
    }


def search_text(use: dict[str, Any], result: dict[str, Any]) -> str:
    """A search and its results as assistant text, for a request where Relay offers no search function."""
    return f"\n\n{results_text(_query(use), result.get('content'))}\n\n"


def search_pairs(blocks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The web searches of an assistant turn: (the other blocks in order, with each search's
    ``server_tool_use`` kept in place) and, by position in that list, the search's result block.
    A search without its result, or a result without its search, is dropped."""
    results = {b.get("tool_use_id"): b for b in blocks if b.get("type") == "web_search_tool_result"}
    kept: list[dict[str, Any]] = []
    paired: dict[int, dict[str, Any]] = {}
    for block in blocks:
        kind = block.get("type")
        if kind == "web_search_tool_result":
            continue
        if kind == "server_tool_use" and block.get("name") == WEB_SEARCH:
            result = results.get(block.get("id"))
            if result is None:
                continue
            paired[len(kept)] = result
        kept.append(block)
    return kept, paired
