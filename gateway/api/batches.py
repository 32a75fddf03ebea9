"""``/v1/messages/batches`` and its sub-routes, in Anthropic's shapes (``gateway.message_batches`` says how)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.response import Stream

from gateway.api.validate import parse_json_object
from gateway.auth import extract_key
from gateway.domain import Principal
from gateway.message_batches import Answer, Batches, with_results_url
from gateway.services import Services

_encode = msgspec.json.Encoder().encode
PATH = "/v1/messages/batches"
MAX_LIMIT = 100


async def _caller(request: Request[Any, Any, Any]) -> tuple[Batches, Principal, dict[str, str]]:
    services: Services = request.app.state.services
    principal = await services.auth.authenticate(extract_key(request.headers))
    batches = Batches(services.relay, services.router, services.conversations, services.meter)
    return batches, principal, dict(request.headers)


def _answer(request: Request[Any, Any, Any], answer: Answer) -> Response[bytes]:
    status, doc = answer
    base = str(request.url).split(PATH, 1)[0]
    return Response(_encode(with_results_url(doc, base)), status_code=status, media_type="application/json")


@post(PATH, status_code=200)
async def create_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    batches, principal, headers = await _caller(request)
    body = parse_json_object(await request.body())
    return _answer(request, await batches.create(principal, body, headers))


@get(PATH)
async def list_batches(request: Request[Any, Any, Any]) -> Response[bytes]:
    batches, principal, headers = await _caller(request)
    try:
        limit = max(1, min(int(request.query_params.get("limit", 20)), MAX_LIMIT))
    except ValueError:
        limit = 20
    page = await batches.list(principal, headers, limit=limit, after=request.query_params.get("after_id"))
    base = str(request.url).split(PATH, 1)[0]
    page["data"] = [with_results_url(doc, base) for doc in page["data"]]
    return Response(_encode(page), media_type="application/json")


@get(PATH + "/{batch_id:str}")
async def retrieve_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    batches, principal, headers = await _caller(request)
    batch_id: str = request.path_params["batch_id"]
    return _answer(request, await batches.retrieve(principal, batch_id, headers))


@post(PATH + "/{batch_id:str}/cancel", status_code=200)
async def cancel_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    batches, principal, headers = await _caller(request)
    batch_id: str = request.path_params["batch_id"]
    return _answer(request, await batches.cancel(principal, batch_id, headers))


@delete(PATH + "/{batch_id:str}", status_code=200)
async def delete_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    batches, principal, headers = await _caller(request)
    batch_id: str = request.path_params["batch_id"]
    return _answer(request, await batches.delete(principal, batch_id, headers))


@get(PATH + "/{batch_id:str}/results")
async def batch_results(request: Request[Any, Any, Any]) -> Stream:
    batches, principal, headers = await _caller(request)
    batch_id: str = request.path_params["batch_id"]
    lines = await batches.results(principal, batch_id, headers)
    return Stream(lines, media_type="application/binary")


BATCH_HANDLERS = [create_batch, list_batches, retrieve_batch, cancel_batch, delete_batch, batch_results]
