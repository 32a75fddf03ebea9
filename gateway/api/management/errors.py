"""Errors of the management API: ``{"error": {"message", "type", "param", "code"}}``, the field named.

The doors' renderer (``gateway.api.errors``) answers in a door's dialect with codes of the LLM APIs
(a model's 404 there is ``model_not_found``); here a 404 may be a key or an upstream, so the codes are our own.
Bad input names its field twice: as the message's first word (``base_url: …``) and as ``param``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import IntegrityError

from gateway.errors import GatewayError

log = logging.getLogger("relay")
_encode = msgspec.json.Encoder().encode

TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_token"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
}
_FIELD = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*): ")
# Messages of the shared services that name a field in words (the CLI's users read them too).
_PHRASES = (
    ("base url", "base_url"),
    ("dialect", "dialect"),
    ("upstream name", "name"),
    ("model name", "name"),
    ("tenant name", "name"),
    ("email", "email"),
    ("password", "password"),
    ("role", "role"),
    ("expires", "expires_at"),
    ("alias", "aliases"),
    ("claude code profile", "claude_code_profile"),
    ("input price", "input_price"),
    ("output price", "output_price"),
    ("cache read price", "cache_read_price"),
    ("cache write price", "cache_write_price"),
)
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`")


def envelope(status: int, message: str, param: str | None = None) -> bytes:
    etype, code = TYPES.get(status) or (
        ("server_error", "internal_error") if status >= 500 else ("invalid_request_error", None)
    )
    return _encode({"error": {"message": message, "type": etype, "param": param, "code": code}})


def management_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    headers: dict[str, str] = {}
    if isinstance(exc, ValidationException):
        status, message, param = 400, *_validation_message(exc)
    elif isinstance(exc, GatewayError):
        status, message, headers = exc.status_code, exc.message, dict(exc.headers)
        param = _field_of(message)
        if status == 400 and param is None:
            message, param = _name_the_field(message)
    elif isinstance(exc, IntegrityError):  # a race two requests lost: the unique name was taken meanwhile
        status, message, param = 409, "conflicts with an existing object (a name already taken?)", None
    elif isinstance(exc, HTTPException):
        status, message, param = exc.status_code, str(exc.detail), None
        if status == 400 and message.startswith("JSON is malformed"):
            message = f"body: not valid JSON ({message})"
            param = "body"
    else:
        log.exception("management API: unexpected error")
        status, message, param = 500, "internal error", None
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="relay"'
    return Response(
        envelope(status, message, param), status_code=status, headers=headers, media_type="application/json"
    )


def _field_of(message: str) -> str | None:
    match = _FIELD.match(message)
    return match.group(1) if match else None


def _name_the_field(message: str) -> tuple[str, str | None]:
    lowered = message.lower()
    for phrase, field in _PHRASES:
        if lowered.startswith(phrase):
            return f"{field}: {message}", field
    return message, None


def _validation_message(exc: ValidationException) -> tuple[str, str | None]:
    """Litestar's msgspec errors (``extra``: message, key, source) as one line naming the field."""
    parts: list[str] = []
    first: str | None = None
    for item in exc.extra if isinstance(exc.extra, list) else []:
        text = str(item.get("message", "invalid value")) if isinstance(item, dict) else str(item)
        key = str(item.get("key", "")) if isinstance(item, dict) else ""
        key = "" if key == "data" else key.replace("[...]", "")  # "[...]": a dict's value
        if named := _MISSING.match(text) or _UNKNOWN.match(text):
            key = f"{key}.{named.group(1)}" if key else named.group(1)
            text = "field required" if text.startswith("Object missing") else "unknown field"
        key = key or "body"
        first = first or key
        parts.append(f"{key}: {text}")
    return ("; ".join(parts) or str(exc.detail)), first
