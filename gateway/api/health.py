"""Liveness, readiness and the root that Claude Code pre-connects to (``HEAD {BASE}``, no auth)."""

from __future__ import annotations

import hmac
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, head

from gateway import metrics
from gateway.errors import AuthenticationFailed, NotFound
from gateway.metering import RedisMeter
from gateway.services import Services


@head("/", status_code=200)
async def root_head() -> None:
    return None


@get("/", media_type="application/json")
async def root() -> dict[str, str]:
    return {"service": "relay", "doors": "/v1/messages, /v1/chat/completions, /v1/models"}


@get("/healthz", media_type="application/json")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", media_type="application/json")
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
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
    ok = all(v == "ok" for v in checks.values())
    return Response({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


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


HEALTH_HANDLERS = [root_head, root, healthz, readyz, prometheus_metrics]
