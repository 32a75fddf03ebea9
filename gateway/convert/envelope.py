"""Reasoning carried through a Responses client: the opaque ``encrypted_content`` of a reasoning item.

A Responses client replays reasoning items verbatim on its next turn (Codex does, with
``store: false``). Relay packs what the upstream needs back into ``encrypted_content``: an
Anthropic thinking block's text and signature (or a redacted block's data), or an
OpenAI-compatible upstream's ``reasoning_content``. The envelope is authenticated with a key
derived from the secret key, so a client cannot forge or alter what reaches the upstream; a
token that fails the check is treated as absent. Pure: the key is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

import msgspec

__all__ = ["PREFIX", "seal", "unseal"]

PREFIX = "rlyr1."
_TAG_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, payload: str) -> str:
    return _b64(hmac.digest(key, (PREFIX + payload).encode(), "sha256")[:_TAG_BYTES])


def seal(key: bytes, carry: dict[str, str]) -> str:
    """``carry`` (short string fields) as an authenticated token."""
    payload = _b64(msgspec.json.encode(carry))
    return f"{PREFIX}{payload}.{_tag(key, payload)}"


def unseal(key: bytes, token: Any) -> dict[str, str] | None:
    """The carry of a token this relay sealed, or None (absent, foreign, altered or malformed)."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        return None
    payload, _, tag = token[len(PREFIX) :].rpartition(".")
    if not payload or not hmac.compare_digest(tag, _tag(key, payload)):
        return None
    try:
        doc = msgspec.json.decode(_unb64(payload))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        return None
    return doc
