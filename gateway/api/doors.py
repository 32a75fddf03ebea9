"""The doors: ``POST /v1/messages`` (Anthropic), ``POST /v1/chat/completions`` and ``POST /v1/responses`` (OpenAI).

``DoorsApp`` sits in front of the Litestar application and serves the door paths itself as plain
ASGI (``gateway.api.asgi`` says why); another method on a door path is a 405 in the door's
dialect, and every other request goes to Litestar. The query string never changes routing (Claude
Code always sends ``?beta=true``).

Request ids: every call gets its own ``req_…`` id, returned as ``request-id`` and ``x-request-id``
(each SDK reads one) and used as the ledger's idempotency key, so a client cannot choose it. A
client's own ``x-request-id`` (printable, up to 128 characters) is kept as its correlation id: it
is forwarded to the upstream, written in the request's log line and echoed as ``x-client-request-id``.

Log lines: a relayed request's line is written by the relay with its usage; a request refused before
it reached an upstream (bad key, unknown model, invalid body, a limit) gets one here, with what was
known by then (``event: request``, status, error code, client_ip, and the key prefix and model once read).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from litestar import Litestar

from gateway import held_responses, held_threads
from gateway.api.asgi import (
    BodyDeadline,
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    request_headers,
    send_json,
    send_stream,
)
from gateway.api.errors import render_error
from gateway.api.validate import parse_body
from gateway.auth import extract_key
from gateway.calls import Call, JSONReply, Keeper, StreamReply
from gateway.db.outage import is_outage
from gateway.domain import Dialect, Route
from gateway.drain import DRAIN_STATE, Drain
from gateway.errors import GatewayError, InvalidRequest
from gateway.metering.base import LogJson
from gateway.metering.limits import Estimate, estimate_request
from gateway.services import Services
from gateway.upstreams.headers import client_request_id

log = logging.getLogger("relay")
request_log = logging.getLogger("relay.request")
DOOR_PATHS: dict[str, tuple[Dialect, bool, str]] = {
    "/v1/messages": (Dialect.ANTHROPIC, False, "chat"),
    "/v1/chat/completions": (Dialect.OPENAI, False, "chat"),
    "/v1/messages/count_tokens": (Dialect.ANTHROPIC, True, "chat"),
    "/v1/responses": (Dialect.RESPONSES, False, "chat"),
    "/v1/embeddings": (Dialect.OPENAI, False, "embeddings"),
    "/v1/completions": (Dialect.OPENAI, False, "completions"),
}
"""Path → (dialect, count_tokens, endpoint). ``embeddings`` and legacy ``completions`` pass through to
OpenAI-dialect upstreams only (``gateway.plans``)."""

_WITH_BODY = frozenset(("POST", "PUT", "PATCH"))


class DoorsApp:
    """The ASGI application the server runs: the doors here, the rest in ``self.app`` (Litestar)."""

    def __init__(self, app: Litestar, *, root_path: str, max_body_bytes: int, drain: Drain | None = None) -> None:
        self.app = app
        prefix = root_path.rstrip("/")
        self._doors = {prefix + path: door for path, door in DOOR_PATHS.items()}
        self._max_body = max_body_bytes
        self.drain = drain or Drain()

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] in _WITH_BODY:
                receive = BodyDeadline(receive, scope)
            path = scope["path"]
            door = self._doors.get(path) or self._doors.get(path.rstrip("/"))
            if door is not None:
                if scope["method"] == "POST":
                    await self._serve(*door, scope, receive, send)
                else:
                    await _method_not_allowed(send, door[0], scope["method"])
                return
        elif scope["type"] == "lifespan":
            scope.setdefault("state", {})[DRAIN_STATE] = self.drain  # the server's protocol tells it of a drain
        await self.app(scope, receive, send)  # type: ignore[arg-type]

    async def _serve(
        self, door: Dialect, count_tokens: bool, endpoint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        services: Services = self.app.state.services
        request_id = "req_" + os.urandom(16).hex()
        headers = request_headers(scope)
        client_id = client_request_id(headers)
        started = time.monotonic()
        client = scope.get("client")
        client_ip: str | None = client[0] if client else None
        seen: dict[str, object] = {"client_ip": client_ip}
        relayed = False
        try:
            raw = await read_body(receive, headers, self._max_body)
            call = await _call(
                services, door, request_id, headers, raw, client_id, seen, count_tokens=count_tokens, endpoint=endpoint
            )
            call.client_ip = client_ip
            if count_tokens:
                reply: JSONReply | StreamReply = await services.relay.count_tokens(call)
            else:
                fallbacks = await _admit(services, call)
                relayed = True  # from here on, the relay writes the request's line (with its usage)
                reply = await services.relay.call(call, fallbacks)
        except ClientGone:
            return
        except Exception as exc:
            if is_outage(exc):
                exc = services.outage.failed(exc)  # one warning per outage, not a traceback per request
            elif not isinstance(exc, GatewayError):
                log.exception("unhandled error in request %s", request_id)
            status, err_headers, body = render_error(exc, door, request_id)
            if not relayed:
                seen["latency_ms"] = int((time.monotonic() - started) * 1000)
                _log_refused(request_id, door, status, exc, seen)
            await send_json(send, status, _with_client_id(err_headers, client_id), body)
            return
        if isinstance(reply, JSONReply):
            await send_json(send, reply.status, _with_client_id(reply.headers, client_id), reply.body)
        else:
            await send_stream(receive, send, _with_client_id(reply.headers, client_id), reply.chunks)


async def _call(
    services: Services,
    door: Dialect,
    request_id: str,
    headers: dict[str, str],
    raw: bytes,
    client_id: str | None,
    seen: dict[str, object],
    *,
    count_tokens: bool,
    endpoint: str = "chat",
) -> Call:
    """The call the request makes; ``seen`` learns the tenant, key prefix and model as they are known."""
    principal = await services.auth.authenticate(extract_key(headers))
    seen.update(tenant_id=principal.tenant_id, key=principal.prefix)
    body = parse_body(raw, door, count_tokens=count_tokens, endpoint=endpoint)
    seen["model"] = asked = body["model"]
    route = await services.router.resolve(principal, asked)
    keep: Keeper | None = None
    if door is Dialect.RESPONSES:
        body = await held_responses.expand(services.conversations, principal, body)
        keep = held_responses.keeper(services.conversations, principal, body)
    elif "thread" in body and not count_tokens:
        body, headers, keep = await held_threads.prepare(services.conversations, principal, route, body, headers)
    return Call(
        request_id=request_id,
        principal=principal,
        route=route,
        door=door,
        body=body,
        headers=headers,
        client_request_id=client_id,
        keeper=keep,
        endpoint=endpoint,
        asked_model=asked,
    )


async def _admit(services: Services, call: Call) -> tuple[Route, ...]:
    """The call's fallbacks, once its key's limits and budgets admitted it (a refusal raises)."""
    try:
        fallbacks = await services.router.fallbacks(call.principal, call.route) if call.route.fallbacks else ()
        limits = call.principal.limits
        if limits.any:
            estimate = (
                estimate_request(call.body, call.route, door=call.door, outputs=services.relay.outputs)
                if limits.needs_estimate
                else Estimate()
            )
            admit = services.limiter.admit
            call.ticket = await admit(call.principal.key_id, call.principal.tenant_id, limits, estimate)
    except BaseException:
        if call.keeper is not None and not call.keeper.settled:  # a claimed thread turn is let go: never relayed
            call.keeper.settled = True
            await call.keeper.abandon()
        raise
    return fallbacks


def _log_refused(request_id: str, door: Dialect, status: int, exc: Exception, seen: dict[str, object]) -> None:
    if not request_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "event": "request",
        "request_id": request_id,
        "door": door.value,
        "status": status,
        "error": getattr(exc, "code", None) or type(exc).__name__,
        "attempts": 0,
        **seen,
    }
    line = LogJson(fields)
    request_log.info("%s", line, extra=line.extra)


async def _method_not_allowed(send: Send, door: Dialect, method: str) -> None:
    err = InvalidRequest(f"{method} is not allowed here; send a POST", headers={"allow": "POST"})
    err.status_code = 405
    status, headers, body = render_error(err, door, None)
    await send_json(send, status, headers, body)


def _with_client_id(reply_headers: dict[str, str], client_id: str | None) -> dict[str, str]:
    if client_id is not None:
        reply_headers["x-client-request-id"] = client_id
    return reply_headers
