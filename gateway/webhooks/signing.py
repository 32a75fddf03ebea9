"""The wire format of a delivery: secret, signature header, retry schedule. Pure: no I/O, no clock read here."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SIGNATURE_HEADER = "relay-signature"
MAX_ATTEMPTS = 10
"""After this many failed attempts a delivery is marked failed and no longer tried."""
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 3600.0


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=TS,v1=HEX``: HMAC-SHA256 of ``TS.BODY``; the timestamp is signed so a captured request ages out."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the header's MAC matches the body and its timestamp is recent."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    # Several v1 values are accepted so a receiver keeps working while a secret is being rotated.
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def backoff_s(attempts: int, *, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S) -> float:
    """Wait before the next try after ``attempts`` failed ones: base * 2^(attempts-1), capped."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)))
