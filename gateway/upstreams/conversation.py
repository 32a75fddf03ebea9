"""Which conversation a request belongs to, as its client names it: the key of affinity (``affinity``).

The first of: Claude Code's ``x-claude-code-session-id``; Codex's ``session_id`` / ``conversation_id``
headers; opencode's ``x-session-affinity`` / ``x-session-id``; the body's ``prompt_cache_key``; Anthropic's
``metadata.user_id`` (Claude Code puts its session there too); a Responses ``previous_response_id`` (each
kept reply carries the choice on to its own id). Scoped by tenant, so one tenant's names never steer
another's traffic. None: not a conversation anyone named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEADERS = ("x-claude-code-session-id", "session_id", "conversation_id", "x-session-affinity", "x-session-id")
MAX_NAME = 512


def conversation_of(tenant_id: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    name = _named(headers, body)
    return f"{tenant_id}:{name[:MAX_NAME]}" if name else None


def response_chain(tenant_id: str, response_id: str) -> str:
    """The conversation a Responses reply continues when a later request names it as ``previous_response_id``."""
    return f"{tenant_id}:resp:{response_id}"


def _named(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    for header in HEADERS:
        value = headers.get(header)
        if value:
            return f"h:{value}"
    key = body.get("prompt_cache_key")
    if isinstance(key, str) and key:
        return f"pck:{key}"
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        user = metadata.get("user_id")
        if isinstance(user, str) and user:
            return f"user:{user}"
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        return f"resp:{previous}"
    return None
