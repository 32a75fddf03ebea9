"""Anthropic message batches through Relay: passed through to an Anthropic-dialect upstream.

- **Create**: every request's ``params.model`` is resolved for the caller's key (aliases, allowed models) and
  renamed to its upstream model. All of them must be served by one Anthropic-dialect upstream (a batch is
  one upstream's job); otherwise a 400 names the limitation. The batch's route is kept for the key in the
  conversation store (kind ``batch``, its expiry included), so only that key sees the batch afterwards.
- **Retrieve, list, cancel, delete** go to the same upstream; ``results_url`` points at Relay.
- **Results** stream back line by line with each message's model renamed to the name the client used, and
  each succeeded request is metered as one ledger row (request id ``batch_<batch id>_<custom id>``) at
  half the model's prices (Anthropic's batch price). The first complete read meters; the claim (kind
  ``batch_metered``) is let go if that read breaks, and the ledger is idempotent on request ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from gateway.conversations import ConversationStore
from gateway.convert.usage import usage_from_anthropic
from gateway.domain import Dialect, Principal, Route
from gateway.errors import InvalidRequest, NotFound, UpstreamUnavailable
from gateway.metering import Meter, UsageRecord
from gateway.relay import Relay
from gateway.routing import Router
from gateway.upstreams.client import UpstreamRequest
from gateway.upstreams.errors import upstream_error

MAX_REQUESTS = 100_000
BATCH_PRICE_FACTOR = 0.5
"""Anthropic bills batched requests at half the model's prices."""
MAX_BODY = 256 * 1024 * 1024
Answer = tuple[int, dict[str, Any]]
"""The upstream's status and JSON document."""
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Batches:
    relay: Relay
    router: Router
    store: ConversationStore
    meter: Meter

    # -- create ------------------------------------------------------------------------------------------

    async def create(self, principal: Principal, body: Any, headers: dict[str, str]) -> Answer:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise InvalidRequest("requests: must be a non-empty array", param="requests")
        if len(requests) > MAX_REQUESTS:
            raise InvalidRequest(f"requests: at most {MAX_REQUESTS} per batch", param="requests")
        routes: dict[str, Route] = {}
        renamed = []
        for i, item in enumerate(requests):
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(params, dict) or not isinstance(params.get("model"), str) or not params["model"]:
                raise InvalidRequest(f"requests.{i}.params.model: field required", param=f"requests.{i}.params.model")
            model: str = params["model"]
            route = routes.get(model) or await self.router.resolve(principal, model)
            routes[model] = route
            renamed.append({**item, "params": {**params, "model": route.upstream_model}})
        route = _one_anthropic_upstream(list(routes.values()))
        status, doc = await self._call(route, "POST", "", headers, _encode({**body, "requests": renamed}))
        if status < 300 and isinstance(doc.get("id"), str):
            names = {r.upstream_model: public for public, r in routes.items()}
            kept = {"model": next(iter(routes)), "names": names}
            # Written now (not behind): the client's next call may reach another worker.
            await self.store.put("batch", doc["id"], kept, tenant_id=principal.tenant_id, key_id=principal.key_id)
        return status, doc

    # -- one batch ---------------------------------------------------------------------------------------

    async def _mine(self, principal: Principal, batch_id: str) -> tuple[Route, dict[str, Any]]:
        turn = await self.store.get("batch", batch_id, tenant_id=principal.tenant_id, key_id=principal.key_id)
        if turn is None:
            raise NotFound(f"message batch {batch_id!r} not found")
        return await self.router.resolve(principal, turn.payload["model"]), turn.payload

    async def retrieve(self, principal: Principal, batch_id: str, headers: dict[str, str]) -> Answer:
        route, _ = await self._mine(principal, batch_id)
        return await self._call(route, "GET", f"/{batch_id}", headers)

    async def cancel(self, principal: Principal, batch_id: str, headers: dict[str, str]) -> Answer:
        route, _ = await self._mine(principal, batch_id)
        return await self._call(route, "POST", f"/{batch_id}/cancel", headers)

    async def delete(self, principal: Principal, batch_id: str, headers: dict[str, str]) -> Answer:
        route, _ = await self._mine(principal, batch_id)
        status, doc = await self._call(route, "DELETE", f"/{batch_id}", headers)
        if status < 300:
            mine = {"tenant_id": principal.tenant_id, "key_id": principal.key_id}
            await self.store.delete("batch", batch_id, **mine)
            await self.store.delete("batch_metered", _claim_id(batch_id), **mine)
        return status, doc

    async def list(
        self, principal: Principal, headers: dict[str, str], *, limit: int, after: str | None
    ) -> dict[str, Any]:
        """The key's batches, newest first, each as the upstream reports it now."""
        ids = await self.store.ids("batch", tenant_id=principal.tenant_id, key_id=principal.key_id,
                                   limit=limit + 1, after=after)  # fmt: skip
        data = []
        for batch_id in ids[:limit]:
            status, doc = await self.retrieve(principal, batch_id, headers)
            if status < 300:
                data.append(doc)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"data": data, "has_more": len(ids) > limit, "first_id": first, "last_id": last}

    # -- results -----------------------------------------------------------------------------------------

    async def results(self, principal: Principal, batch_id: str, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """The results, JSON lines with models renamed; succeeded requests metered on the first complete read."""
        route, kept = await self._mine(principal, batch_id)
        resp = await self._open(route, "GET", f"/{batch_id}/results", headers)
        if resp.status >= 400:
            raw = await resp.read()
            resp.release()
            raise upstream_error(resp.status, raw, resp.headers, secret=route.upstream.api_key)
        # One INSERT decides, across workers and replicas, which read meters the results.
        meter = await self.store.put("batch_metered", _claim_id(batch_id), {"batch": batch_id},
                                     tenant_id=principal.tenant_id, key_id=principal.key_id)  # fmt: skip
        return self._lines(principal, route, kept["names"], batch_id, resp, meter)

    async def _lines(
        self,
        principal: Principal,
        route: Route,
        names: dict[str, str],
        batch_id: str,
        resp: aiohttp.ClientResponse,
        meter: bool,
    ) -> AsyncIterator[bytes]:
        complete = False
        try:
            async for line in resp.content:
                if not line.strip():
                    continue
                doc = _decode(line)
                message = (doc.get("result") or {}).get("message")
                if isinstance(message, dict):
                    public = names.get(str(message.get("model")), route.public_name)
                    message["model"] = public
                    if meter:
                        await self._meter(principal, public, batch_id, str(doc.get("custom_id")), message)
                yield _encode(doc) + b"\n"
            complete = True
        finally:
            resp.release()
            if meter and not complete:  # the next read meters them all (the ledger keeps each row once)
                await self.store.delete("batch_metered", _claim_id(batch_id), tenant_id=principal.tenant_id,
                                        key_id=principal.key_id)  # fmt: skip

    async def _meter(
        self, principal: Principal, public: str, batch_id: str, custom_id: str, msg: dict[str, Any]
    ) -> None:
        route = await self.router.resolve(principal, public)
        usage = usage_from_anthropic(msg.get("usage"))
        digest = hashlib.sha256(f"{batch_id}:{custom_id}".encode()).hexdigest()[:32]
        self.meter.record(
            UsageRecord(
                request_id=f"batch_{digest}",
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                model=public,
                upstream_id=route.upstream.id,
                door_dialect=Dialect.ANTHROPIC.value,
                upstream_dialect=route.dialect.value,
                stream=False,
                usage=usage,
                cost_micro_usd=int(route.price.cost_micro_usd(usage) * BATCH_PRICE_FACTOR),
                status=200,
                latency_ms=0,
            )
        )

    # -- upstream ----------------------------------------------------------------------------------------

    async def _open(self, route: Route, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Any:
        url = route.upstream.base_url.rstrip("/") + "/v1/messages/batches" + path
        return await self.relay.open_upstream(route, UpstreamRequest(url, {}, body, method), headers)

    async def _call(self, route: Route, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        resp = await self._open(route, method, path, headers, body)
        try:
            raw = await resp.content.read(MAX_BODY)
        except aiohttp.ClientError:
            raise UpstreamUnavailable("upstream connection failed while reading a message batch") from None
        finally:
            resp.release()
        if resp.status >= 400:
            raise upstream_error(resp.status, raw, resp.headers, secret=route.upstream.api_key)
        doc = _decode(raw) if raw else {}
        if not isinstance(doc, dict):
            raise UpstreamUnavailable("upstream returned an invalid message batch")
        return resp.status, doc


def _claim_id(batch_id: str) -> str:
    return batch_id + ".metered"


def _one_anthropic_upstream(routes: list[Route]) -> Route:
    for route in routes:
        if route.dialect is not Dialect.ANTHROPIC:
            raise InvalidRequest(
                f"message batches run on Anthropic-dialect upstreams only; model {route.public_name!r} is served by "
                "an OpenAI-dialect upstream",
                param="requests",
            )
    if len({route.upstream.id for route in routes}) > 1:
        raise InvalidRequest("every request of a message batch must use models of one upstream", param="requests")
    return routes[0]


def with_results_url(doc: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The batch object with ``results_url`` pointing at Relay (the client's key works there)."""
    if doc.get("results_url") and isinstance(doc.get("id"), str):
        return {**doc, "results_url": f"{base_url}/v1/messages/batches/{doc['id']}/results"}
    return doc
