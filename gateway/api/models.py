"""``GET /v1/models``: the models this key may use, in the caller's dialect."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from gateway.api.errors import door_of
from gateway.auth import extract_key
from gateway.domain import Dialect, Route
from gateway.errors import ModelNotFound
from gateway.services import Services

_encode = msgspec.json.Encoder().encode
CREATED = 1_735_689_600  # 2025-01-01: a fixed, honest "known since" for configured models


def _anthropic(route: Route) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "model",
        "id": route.public_name,
        "display_name": route.public_name,
        "created_at": "2025-01-01T00:00:00Z",
    }
    if route.context_window:
        doc["max_input_tokens"] = route.context_window
    if route.max_output_tokens:
        doc["max_tokens"] = route.max_output_tokens
    return doc


def _openai(route: Route) -> dict[str, Any]:
    return {"id": route.public_name, "object": "model", "created": CREATED, "owned_by": route.upstream.name}


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    services: Services = request.app.state.services
    principal = await services.auth.authenticate(extract_key(request.headers))
    routes = await services.router.visible(principal)
    if door_of(request) is Dialect.ANTHROPIC:
        data = [_anthropic(r) for r in routes]
        body = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    else:
        body = {"object": "list", "data": [_openai(r) for r in routes]}
    return Response(_encode(body), media_type="application/json")


@get("/v1/models/{model_id:str}")
async def get_model(request: Request[Any, Any, Any]) -> Response[bytes]:
    model_id: str = request.path_params["model_id"]
    services: Services = request.app.state.services
    principal = await services.auth.authenticate(extract_key(request.headers))
    for route in await services.router.visible(principal):
        if route.public_name == model_id:
            doc = _anthropic(route) if door_of(request) is Dialect.ANTHROPIC else _openai(route)
            return Response(_encode(doc), media_type="application/json")
    raise ModelNotFound(f"model {model_id!r} not found")


MODEL_HANDLERS = [list_models, get_model]
