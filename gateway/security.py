"""Key generation and digest, upstream-secret encryption. Imports nothing of ours.

API keys are random and high-entropy, so a keyed fast hash (HMAC-SHA256 with a key derived
from the secret key) is the right digest: it can be indexed and costs microseconds. argon2id
is for human passwords (``gateway.auth``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_PREFIX = "sk-"
KEY_BODY_LENGTH = 48  # base62: ~285 bits
DISPLAY_PREFIX_LENGTH = 10  # "sk-" + 7 characters
_BASE62 = string.digits + string.ascii_letters


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A 32-byte subkey per purpose, so one leaked subkey reveals nothing of the others."""
    return hmac.new(secret_key.encode(), b"relay:" + purpose.encode(), hashlib.sha256).digest()


def generate_api_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(KEY_BODY_LENGTH))


def looks_like_api_key(value: str) -> bool:
    body = value[len(KEY_PREFIX) :]
    # base62 is exactly ASCII letters and digits: two C-level checks instead of a per-character loop.
    return value.startswith(KEY_PREFIX) and 40 <= len(body) <= 128 and body.isascii() and body.isalnum()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def digest_api_key(digest_key: bytes, key: str) -> str:
    return hmac.new(digest_key, key.encode(), hashlib.sha256).hexdigest()


class SecretBox:
    """AES-256-GCM for upstream credentials, bound to the row they belong to (associated data)."""

    VERSION = b"v1"

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return (self.VERSION + b":" + base64.urlsafe_b64encode(nonce + sealed)).decode()

    def decrypt(self, token: str, *, context: str) -> str:
        version, _, payload = token.encode().partition(b":")
        if version != self.VERSION:
            raise ValueError("unknown secret format")
        raw = base64.urlsafe_b64decode(payload)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()


def mask_secret(value: str) -> str:
    """What may be shown of a stored secret: its last four characters."""
    return "…" + value[-4:] if len(value) > 8 else "…"


def upstream_secret_context(upstream_id: str) -> str:
    """Associated data binding a credential's ciphertext to its row: a swapped ciphertext fails."""
    return f"upstream:{upstream_id}"


REDACTED = "***"


def scrub(data: bytes, secret: str) -> bytes:
    """``data`` (a JSON answer, a stream chunk, an error body) with every copy of ``secret`` redacted.

    The one scrubber for everything Relay sends a client: an upstream may echo the credential we
    sent it anywhere (error text, a proxy's page, a body it reflects). Secrets under four characters
    are not searched for (they would match noise). A stream is scrubbed event by event, so a
    credential an upstream spells out across several deltas is not caught: only a model that knows
    the key could do that, and the key is never sent to the model.
    """
    if len(secret) < 4:
        return data
    needle = secret.encode()
    return data.replace(needle, REDACTED.encode()) if needle in data else data
