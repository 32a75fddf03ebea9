"""Errors rendered in the dialect of the door they came through, with the status the official API uses."""

from __future__ import annotations

import os
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException

from gateway.db.outage import DatabaseUnavailable, is_outage
from gateway.domain import Dialect
from gateway.errors import GatewayError, NotFound, RequestTooLarge

_encode = msgspec.json.Encoder().encode

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
    504: ("server_error", "timeout"),
}


def door_of(request: Request[Any, Any, Any]) -> Dialect:
    """The dialect to answer in: by path, and for shared endpoints by the caller's headers."""
    path = request.url.path
    if "/messages" in path:
        return Dialect.ANTHROPIC
    if "/chat/completions" in path or "/responses" in path:
        return Dialect.OPENAI
    headers = request.headers
    if "anthropic-version" in headers or "x-api-key" in headers:
        return Dialect.ANTHROPIC
    return Dialect.OPENAI


def error_body(
    door: Dialect,
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    request_id: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    """``code``: the OpenAI error's code where the status alone does not say it (a 404 that is no model's)."""
    if door is Dialect.ANTHROPIC:
        typ = error_type or ANTHROPIC_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        doc: dict[str, Any] = {"type": "error", "error": {"type": typ, "message": message}}
        if request_id:
            doc["request_id"] = request_id
        return _encode(doc)
    otype, status_code = OPENAI_TYPES.get(status) or (
        ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    )
    return _encode({"error": {"message": message, "type": otype, "param": param, "code": code or status_code}})


def gateway_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    request_id = getattr(request.state, "request_id", None) or "req_" + os.urandom(16).hex()
    door = door_of(request)
    if isinstance(exc, NotFoundException):
        exc = unknown_route(door, request.method, request.url.path)
    status, headers, body = render_error(exc, door, request_id)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def unknown_route(door: Dialect, method: str, path: str) -> GatewayError:
    """A path no route serves: a plain not-found in the door's dialect, never ``model_not_found``.

    (SDKs raise "model not found" on that code, which sends users looking for the wrong problem.)
    """
    message = f"Unknown request URL: {method} {path}. Check the base URL and the API path."
    err = GatewayError(message)
    err.status_code, err.code, err.should_retry = 404, "not_found", False
    if door is not Dialect.ANTHROPIC:
        err.envelope = {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "not_found"}
        }
    return err


def render_error(exc: Exception, door: Dialect, request_id: str | None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and JSON body of ``exc`` as the door's official API would answer it."""
    err = _as_gateway_error(exc)
    status = err.status_code
    if door is Dialect.ANTHROPIC and status == 503:
        status = 529  # Anthropic's overloaded status, which Claude Code's --fallback-model reacts to
    elif door is not Dialect.ANTHROPIC and status == 529:
        status = 503
    headers = dict(err.headers)
    if err.should_retry is not None:
        headers["x-should-retry"] = "true" if err.should_retry else "false"
    if request_id:
        headers["request-id"] = headers["x-request-id"] = request_id
    envelope = getattr(err, "envelope", None)
    if envelope is not None:  # a converter already wrote the error in the door's dialect
        if door is Dialect.ANTHROPIC and request_id:
            envelope = {**envelope, "request_id": request_id}
        body = _encode(envelope)
    else:
        # The upstream's own error type, unless the status was remapped (503 -> 529 must say overloaded_error).
        error_type = (
            getattr(err, "error_type", None) if door is Dialect.ANTHROPIC and status == err.status_code else None
        )
        if error_type and error_type not in ANTHROPIC_TYPES.values() and error_type != "api_error":
            error_type = None
        param = getattr(err, "param", None)
        code = err.code if isinstance(err, NotFound) else None
        body = error_body(
            door, status, err.message, error_type=error_type, request_id=request_id, param=param, code=code
        )
    return status, headers, body


def _as_gateway_error(exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, HTTPException):
        if exc.status_code == 413:
            return RequestTooLarge("request body too large")
        err = GatewayError(str(exc.detail))
        err.status_code = exc.status_code
        err.should_retry = None if exc.status_code >= 500 else False
        return err
    if is_outage(exc):
        return DatabaseUnavailable()
    return GatewayError("internal error")
