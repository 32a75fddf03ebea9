"""The Responses API's stored-response routes: retrieve, delete, list input items, count input tokens.

Every route authenticates the key and sees only the responses that key created (another key's id
answers exactly like an unknown one). ``POST /v1/responses`` itself is a door (``gateway.api.doors``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post

from gateway.api.errors import unknown_route
from gateway.api.validate import parse_body
from gateway.auth import extract_key
from gateway.domain import Dialect, Principal
from gateway.held_responses import KIND, client_view, expand, response_not_found
from gateway.services import Services
from gateway.tokencount import count_responses_request

_encode = msgspec.json.Encoder().encode
MAX_LIMIT = 100


def _json(doc: Any, status: int = 200) -> Response[bytes]:
    return Response(_encode(doc), status_code=status, media_type="application/json")


async def _caller(request: Request[Any, Any, Any]) -> tuple[Services, Principal]:
    services: Services = request.app.state.services
    return services, await services.auth.authenticate(extract_key(request.headers))


async def _kept(request: Request[Any, Any, Any]) -> dict[str, Any]:
    services, principal = await _caller(request)
    response_id: str = request.path_params["response_id"]
    turn = await services.conversations.get(KIND, response_id, tenant_id=principal.tenant_id, key_id=principal.key_id)
    if turn is None:
        raise response_not_found(response_id)
    return turn.payload


@get("/v1/responses/{response_id:str}")
async def retrieve_response(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _json(client_view(await _kept(request)))


@delete("/v1/responses/{response_id:str}", status_code=200)
async def delete_response(request: Request[Any, Any, Any]) -> Response[bytes]:
    services, principal = await _caller(request)
    response_id: str = request.path_params["response_id"]
    if not await services.conversations.delete(
        KIND, response_id, tenant_id=principal.tenant_id, key_id=principal.key_id
    ):
        raise response_not_found(response_id)
    return _json({"id": response_id, "object": "response.deleted", "deleted": True})


@get("/v1/responses/{response_id:str}/input_items")
async def list_input_items(request: Request[Any, Any, Any]) -> Response[bytes]:
    """OpenAI's cursor list: ``order`` (default ``desc``), ``after`` (an item id), ``limit`` (1-100, default 20)."""
    items: list[dict[str, Any]] = list((await _kept(request))["input"])
    query = request.query_params
    if query.get("order", "desc") != "asc":
        items.reverse()
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(int(query.get("limit", 20)), MAX_LIMIT))
    except ValueError:
        limit = 20
    page = items[:limit]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }
    )


@post("/v1/responses/input_tokens", status_code=200)
async def count_input_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Counted locally with the same tokenizer as ``count_tokens`` for non-Anthropic upstreams."""
    services, principal = await _caller(request)
    body = parse_body(await request.body(), Dialect.RESPONSES, count_tokens=True)
    await services.router.resolve(principal, body["model"])
    body = await expand(services.conversations, principal, body)
    return _json({"object": "response.input_tokens", "input_tokens": count_responses_request(body)})


@post("/v1/responses/compact")
async def compact(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Remote compaction is OpenAI's own; a client without it compacts locally (Codex does)."""
    await _caller(request)
    raise unknown_route(Dialect.RESPONSES, "POST", request.url.path)


RESPONSES_HANDLERS = [compact, retrieve_response, delete_response, list_input_items, count_input_tokens]
