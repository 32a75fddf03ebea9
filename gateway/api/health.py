"""Liveness, readiness and the root that Claude Code pre-connects to (``HEAD {BASE}``, no auth).

``/healthz`` and ``/readyz`` answer under ``RELAY_ROOT_PATH`` like every route, and also at the
unprefixed path (``probe_handlers``, mounted at ``/`` by ``app.create_app``): Docker's HEALTHCHECK,
compose and Kubernetes probes call the container directly, not through the proxy that adds the prefix.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, head
from litestar.handlers import HTTPRouteHandler

from gateway import metrics
from gateway.errors import AuthenticationFailed, NotFound
from gateway.metering import RedisMeter
from gateway.services import Services


@head("/", status_code=200)
async def root_head() -> None:
    return None


@head("/api/hello", status_code=200)
async def hello_head() -> None:
    """Claude Code 2.1.3xx pre-connects with ``HEAD {BASE}/api/hello`` (no auth); a 404 there is noise."""
    return None


@get("/", media_type="application/json")
async def root() -> dict[str, str]:
    return {"service": "relay", "doors": "/v1/messages, /v1/chat/completions, /v1/models"}


async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    """Ready: 200 ``ok``; 200 ``degraded`` while this process can still serve through an outage; else 503.

    A process that was ready keeps serving known keys from its caches for ``RELAY_STALE_IF_ERROR``
    after the database goes, and runs per-process limits while Redis is away (unless
    ``RELAY_METERING_FAIL_CLOSED``): taking every replica out of the load balancer then would turn
    a partial outage into a total one. A process that never reached its database is not ready.
    """
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2.0):
            async with services.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if isinstance(services.meter, RedisMeter):
        try:
            await services.meter.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        services.ready_once = True
        return Response({"status": "ok", **checks}, status_code=200)
    since = services.outage.since
    stale_ok = since is None or time.monotonic() - since < services.settings.stale_if_error_s
    db_ok = checks["database"] == "ok" or (services.ready_once and stale_ok)
    redis_ok = checks.get("redis", "ok") == "ok" or not services.settings.metering_fail_closed
    degraded = db_ok and redis_ok
    return Response(
        {"status": "degraded" if degraded else "unavailable", **checks}, status_code=200 if degraded else 503
    )


@get("/metrics", media_type="text/plain; version=0.0.4")
async def prometheus_metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus exposition, behind ``RELAY_METRICS_TOKEN`` (``Authorization: Bearer``); off when unset."""
    services: Services = request.app.state.services
    token = services.settings.metrics_token
    if not token:
        raise NotFound("metrics are off: set RELAY_METRICS_TOKEN to serve them")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthenticationFailed("metrics need 'Authorization: Bearer <RELAY_METRICS_TOKEN>'")
    return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")


def probe_handlers() -> list[HTTPRouteHandler]:
    """``GET /healthz`` and ``GET /readyz``, as new handlers each call (one set per router that mounts them)."""
    return [
        get("/healthz", media_type="application/json")(healthz),
        get("/readyz", media_type="application/json")(readyz),
    ]


HEALTH_HANDLERS = [root_head, hello_head, root, *probe_handlers(), prometheus_metrics]
