"""The doors: ``POST /v1/messages`` (Anthropic), ``POST /v1/chat/completions`` and ``POST /v1/responses`` (OpenAI).

``DoorsApp`` sits in front of the Litestar application and serves the door paths itself as plain
ASGI (``gateway.api.asgi`` says why); another method on a door path is a 405 in the door's
dialect, and every other request goes to Litestar. The query string never changes routing (Claude
Code always sends ``?beta=true``).

Request ids: every call gets its own ``req_…`` id, returned as ``request-id`` and ``x-request-id``
(each SDK reads one) and used as the ledger's idempotency key, so a client cannot choose it. A
client's own ``x-request-id`` (printable, up to 128 characters) is kept as its correlation id: it
is forwarded to the upstream, written in the request's log line and echoed as ``x-client-request-id``.
"""

from __future__ import annotations

import logging
import os
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
from gateway.domain import Dialect
from gateway.drain import DRAIN_STATE, Drain
from gateway.errors import GatewayError, InvalidRequest
from gateway.metering.limits import Estimate, estimate_request
from gateway.services import Services
from gateway.upstreams.headers import client_request_id

log = logging.getLogger("relay")
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
        try:
            raw = await read_body(receive, headers, self._max_body)
            call = await _call(
                services, door, request_id, headers, raw, client_id, count_tokens=count_tokens, endpoint=endpoint
            )
            reply = await (services.relay.count_tokens(call) if count_tokens else _relay(services, call))
        except ClientGone:
            return
        except Exception as exc:
            if is_outage(exc):
                exc = services.outage.failed(exc)  # one warning per outage, not a traceback per request
            elif not isinstance(exc, GatewayError):
                log.exception("unhandled error in request %s", request_id)
            status, err_headers, body = render_error(exc, door, request_id)
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
    *,
    count_tokens: bool,
    endpoint: str = "chat",
) -> Call:
    principal = await services.auth.authenticate(extract_key(headers))
    body = parse_body(raw, door, count_tokens=count_tokens, endpoint=endpoint)
    route = await services.router.resolve(principal, body["model"])
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
    )


async def _relay(services: Services, call: Call) -> JSONReply | StreamReply:
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
    return await services.relay.call(call, fallbacks)


async def _method_not_allowed(send: Send, door: Dialect, method: str) -> None:
    err = InvalidRequest(f"{method} is not allowed here; send a POST", headers={"allow": "POST"})
    err.status_code = 405
    status, headers, body = render_error(err, door, None)
    await send_json(send, status, headers, body)


def _with_client_id(reply_headers: dict[str, str], client_id: str | None) -> dict[str, str]:
    if client_id is not None:
        reply_headers["x-client-request-id"] = client_id
    return reply_headers
