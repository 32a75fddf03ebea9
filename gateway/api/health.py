"""Liveness, readiness and the root that Claude Code pre-connects to (``HEAD {BASE}``, no auth)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, head

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


HEALTH_HANDLERS = [root_head, root, healthz, readyz]
