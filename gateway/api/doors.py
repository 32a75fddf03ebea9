"""The two doors: ``POST /v1/messages`` (Anthropic) and ``POST /v1/chat/completions`` (OpenAI).

The query string never changes routing (Claude Code always sends ``?beta=true``).
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Request, Response, post
from litestar.response import Stream

from gateway.api.validate import parse_body
from gateway.auth import extract_key
from gateway.domain import Dialect
from gateway.metering.limits import Estimate, estimate_request
from gateway.relay import Call, JSONReply
from gateway.services import Services


async def _call(request: Request[Any, Any, Any], door: Dialect, *, count_tokens: bool = False) -> Call:
    services: Services = request.app.state.services
    request_id = "req_" + os.urandom(16).hex()
    request.state.request_id = request_id
    principal = await services.auth.authenticate(extract_key(request.headers))
    body = parse_body(await request.body(), door, count_tokens=count_tokens)
    route = await services.router.resolve(principal, body["model"])
    return Call(request_id=request_id, principal=principal, route=route, door=door, body=body, headers=request.headers)


async def _handle(request: Request[Any, Any, Any], door: Dialect) -> Response[bytes] | Stream:
    services: Services = request.app.state.services
    call = await _call(request, door)
    fallbacks = await services.router.fallbacks(call.principal, call.route) if call.route.fallbacks else ()
    limits = call.principal.limits
    if limits.any:
        estimate = (
            estimate_request(call.body, call.route, anthropic_body=door is Dialect.ANTHROPIC)
            if limits.needs_estimate
            else Estimate()
        )
        call.ticket = await services.limiter.admit(call.principal.key_id, call.principal.tenant_id, limits, estimate)
    reply = await services.relay.call(call, fallbacks)
    if isinstance(reply, JSONReply):
        return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type="application/json")
    return Stream(reply.chunks, headers=reply.headers, media_type="text/event-stream")


@post("/v1/messages", status_code=200)
async def anthropic_messages(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    return await _handle(request, Dialect.ANTHROPIC)


@post("/v1/chat/completions", status_code=200)
async def openai_chat_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    return await _handle(request, Dialect.OPENAI)


@post("/v1/messages/count_tokens", status_code=200)
async def anthropic_count_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
    services: Services = request.app.state.services
    reply = await services.relay.count_tokens(await _call(request, Dialect.ANTHROPIC, count_tokens=True))
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type="application/json")


DOOR_HANDLERS = [anthropic_messages, anthropic_count_tokens, openai_chat_completions]
