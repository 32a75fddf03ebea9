"""Deterministic identifiers: tool-call ids, tool names, relay-minted signatures, user hashes.

Every function here is pure, so the same history maps to the same ids on every turn.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable

__all__ = [
    "SIGNATURE_PREFIX",
    "hash_user",
    "is_minted_signature",
    "mint_signature",
    "sanitize_tool_id",
    "shorten_tool_name",
    "tool_name_map",
]

_VALID_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SIGNATURE_PREFIX = "rly1."


def _hex8(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def sanitize_tool_id(tool_id: str) -> str:
    """An id Anthropic accepts (``^[a-zA-Z0-9_-]+$``, ≤ 64 chars); valid ids are unchanged (§2.1)."""
    if _VALID_ID.match(tool_id) and len(tool_id) <= 64:
        return tool_id
    cleaned = _INVALID_CHAR.sub("_", tool_id)
    return f"{cleaned[:55]}_{_hex8(tool_id)}"


def shorten_tool_name(name: str) -> str:
    """A function name both dialects accept (``^[a-zA-Z0-9_-]{1,64}$``); valid names are unchanged."""
    if _VALID_NAME.match(name):
        return name
    cleaned = _INVALID_CHAR.sub("_", name) or "tool"
    return f"{cleaned[:55]}_{_hex8(name)}"


def tool_name_map(names: Iterable[str]) -> dict[str, str]:
    """``{shortened: original}`` for every name that had to change."""
    return {short: name for name in names if (short := shorten_tool_name(name)) != name}


@functools.lru_cache(maxsize=256)
def mint_signature(provider: str) -> str:
    """A recognisable signature for reasoning that came from a non-Anthropic upstream (§5.5)."""
    raw = f'{{"p":"{_INVALID_CHAR.sub("_", provider)}"}}'.encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{SIGNATURE_PREFIX}{payload}.{_hex8(SIGNATURE_PREFIX + payload)}"


def is_minted_signature(signature: str | None) -> bool:
    """True for signatures this relay made (never valid at Anthropic)."""
    return bool(signature) and str(signature).startswith(SIGNATURE_PREFIX)


def hash_user(user: str) -> str:
    """An opaque, stable end-user id: no PII reaches the upstream (§3.1, §6.1)."""
    return hashlib.sha256(user.encode()).hexdigest()
