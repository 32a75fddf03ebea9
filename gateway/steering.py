"""How the relay uses key pools for one call: which model and key each attempt carries, what an answer says
about its key, and what the conversation keeps (``gateway.upstreams.pool``, ``affinity``, ``conversation``).

Split from ``gateway.relay`` so the hot path there reads as attempts, streams and metering; this is the
pool's side of each of those steps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from gateway.calls import Call
from gateway.domain import Route, Upstream, Usage
from gateway.errors import GatewayError, UpstreamBlocked, UpstreamError, UpstreamTimeout
from gateway.upstreams.conversation import conversation_of, response_chain
from gateway.upstreams.pool import KeyPool

log = logging.getLogger("relay.request")


class Steering:
    def __init__(self, pool: KeyPool, background: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.pool = pool
        self._background = background
        self.on_key_disabled: Callable[[Upstream, str], None] | None = None
        """Set by the services: keep a refused key disabled (with the reason) and raise its alert."""

    async def routes(self, call: Call, routes: tuple[Route, ...]) -> tuple[Route, ...]:
        """Name the call's conversation; one that a fallback served keeps that fallback first (its cache is there)."""
        call.conversation = conversation_of(call.principal.tenant_id, call.headers, call.body)
        if call.conversation is None or len(routes) < 2:
            return routes
        sticky = await self.pool.affinity.get(call.conversation)
        if sticky is None or sticky.model == routes[0].public_name:
            return routes
        chosen = [r for r in routes if r.public_name == sticky.model]
        return (*chosen, *(r for r in routes if r.public_name != sticky.model)) if chosen else routes

    async def carry_key(self, call: Call) -> Route:
        """The call's route carrying the pool key for this attempt; an error when every key is out."""
        upstream = call.route.upstream
        key = await self.pool.pick(upstream, call.conversation, call.tried_keys)
        if key is None:
            wait = self.pool.cooling_left(upstream)
            if wait is not None:
                err = UpstreamError(f"every key of upstream {upstream.name!r} is rate-limited", status_code=429,
                                    headers={"retry-after": str(max(1, math.ceil(wait)))})  # fmt: skip
                err.code = "upstream_keys_cooling"
            else:
                err = UpstreamError(f"no key of upstream {upstream.name!r} is usable now", status_code=503)
                err.code = "upstream_keys_exhausted"
            raise err
        if key.id == upstream.key_id:
            return call.route
        return replace(call.route, upstream=replace(upstream, api_key=key.secret, key_id=key.id))

    def judge(self, call: Call, status: int, headers: Mapping[str, str], message: str) -> None:
        """An upstream's error answer, before the first byte: the key may cool or be taken out."""
        upstream = call.route.upstream
        verdict = self.pool.judge(upstream, status, headers, message)
        if verdict.disabled is not None:
            log.warning("upstream %s: key %s disabled: %s", upstream.name, upstream.key_id, verdict.disabled)
            if self.on_key_disabled is not None:
                self.on_key_disabled(upstream, verdict.disabled)
        elif verdict.cooling_s is not None:
            log.info("upstream %s: key %s cooling for %.1f s", upstream.name, upstream.key_id, verdict.cooling_s)

    def finished(self, call: Call, status: int, usage: Usage) -> None:
        """What the pool learns from the request's end: tokens for the key's ``tpm``, the conversation's choice."""
        upstream = call.route.upstream
        if not upstream.key_id:
            return
        if self.pool.rates is not None and any(k.tpm for k in upstream.keys if k.id == upstream.key_id):
            self.pool.rates.spend(upstream.key_id, usage.total_tokens)
        if status == 200:
            self.pool.succeeded(upstream)
            if call.conversation is not None and _chose(call):
                self._background(self.pool.stick(call.conversation, upstream.key_id, call.route.public_name))

    def kept(self, call: Call, reply_id: str) -> None:
        """A kept Responses reply: the request that continues it (``previous_response_id``) stays on this key."""
        upstream = call.route.upstream
        if upstream.key_id and _chose(call):
            chain = response_chain(call.principal.tenant_id, reply_id)
            self._background(self.pool.stick(chain, upstream.key_id, call.route.public_name))


def _chose(call: Call) -> bool:
    """The call's key or model was one choice among several: worth keeping for its conversation."""
    route = call.route
    return len(route.upstream.keys) > 1 or bool(route.fallbacks) or route.public_name != call.requested_model


def moves_key(exc: GatewayError) -> bool:
    """Another key of the same upstream may succeed: this one was refused, rate-limited, failed (5xx, connection)
    or its circuit is open. Not after a timeout: the call's time is spent, and a fallback model gets what is left."""
    return (
        isinstance(exc, UpstreamError)
        and not isinstance(exc, UpstreamTimeout | UpstreamBlocked)
        and (exc.key_refused or exc.status_code == 429 or exc.status_code >= 500)
    )
