"""Upstream error responses normalised into ``UpstreamError`` (status kept, message extracted, secrets scrubbed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.errors import UpstreamError
from gateway.upstreams.headers import forwarded_response_headers

_MAX_MESSAGE = 2000


def upstream_error(status: int, body: bytes, headers: Mapping[str, str], *, secret: str = "") -> UpstreamError:
    """Build the error a client sees for an upstream's non-2xx answer.

    JSON bodies of either dialect give their message; HTML or other text is never reflected
    (an nginx error page is not an API error message). The upstream credential is scrubbed
    from the message in case the upstream echoed it.
    """
    message, error_type = _parse(body)
    if message is None:
        message = f"upstream returned HTTP {status}"
    scrub = bool(secret) and len(secret) >= 4
    if scrub:
        message = message.replace(secret, "***")
    forwarded = forwarded_response_headers(headers, secret=secret)
    if status in (401, 407):
        # Our own upstream credential was refused: a gateway configuration fault, not the client's.
        # A 401 would make Claude Code ask its user to log in again.
        return UpstreamError(f"upstream authentication failed: {message}"[:_MAX_MESSAGE], status_code=502)
    return UpstreamError(
        message[:_MAX_MESSAGE],
        status_code=status if 400 <= status <= 599 else 502,
        error_type=error_type,
        headers=forwarded,
    )


def _parse(body: bytes) -> tuple[str | None, str | None]:
    try:
        doc: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    err = doc.get("error")
    if isinstance(err, dict):
        msg = err.get("message")
        typ = err.get("type")
        return (str(msg) if msg is not None else None), (typ if isinstance(typ, str) else None)
    if isinstance(err, str):
        return err, None
    msg = doc.get("message") or doc.get("detail")
    return (str(msg) if msg else None), None
