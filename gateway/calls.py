"""One client request as the relay sees it, and the two shapes of its answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.domain import Dialect, Principal, Route, Usage
from gateway.metering.limits import Ticket

if TYPE_CHECKING:
    from gateway.tracing import RequestTrace


@dataclass(slots=True)
class Call:
    """One client request at the relay: who, where to, what."""

    request_id: str
    principal: Principal
    route: Route
    door: Dialect
    body: dict[str, Any]
    headers: Mapping[str, str]
    started: float = field(default_factory=time.monotonic)
    notes: tuple[str, ...] = ()
    """Conversion notes: what translation dropped or changed (also sent as ``relay-conversion-notes``)."""
    ticket: Ticket | None = None
    """The request's hold on its key's limits and budgets, settled once when the call is over."""
    spent: list[int] = field(default_factory=lambda: [0, 0])
    """Tokens and micro-USD of every attempt so far (fallbacks included), for settling the ticket."""
    tries: list[tuple[str, int, str | None]] = field(default_factory=list)
    """Failed attempts so far (model, status, error code), shared by the request's attempts like ``spent``:
    retries and fallbacks are attempts inside one request, recorded as one ledger row."""
    requested_model: str = ""
    """The public model the client asked for (a fallback's attempt routes elsewhere)."""
    asked_model: str = ""
    """The model name in the client's body, before the key's aliases (``requested_model`` is after them)."""
    client_request_id: str | None = None
    """The caller's own ``x-request-id``, for correlation only (never the ledger's key)."""
    endpoint: str = "chat"
    """``chat`` (the door's own API), or ``embeddings`` / ``completions`` through the OpenAI door."""
    consumed: list[Usage] = field(default_factory=list)
    """Tokens of failed attempts whose upstream had already answered part of them (the earlier calls of a web
    search loop), shared by the attempts like ``spent``: the request's one row counts them."""
    conversation: str | None = None
    """The conversation the client named (``gateway.upstreams.conversation``): its key and fallback stick."""
    tried_keys: list[str] = field(default_factory=list)
    """Pool keys of the current route that failed this request before the first byte (not tried again)."""
    client_ip: str | None = None
    """The client's address as the server gives it (after ``RELAY_FORWARDED_ALLOW_IPS``): for the log line only."""
    upstream_ms: int | None = None
    """The last upstream exchange's part of the latency: from sending it to its response headers (log line only)."""
    keeper: Keeper | None = None
    """Keeps a server-held conversation's turn: ``complete`` with the final reply before its last byte
    is sent (so a client that continues at once finds it), else ``abandon`` when the call ends."""
    trace: RequestTrace | None = None
    """The request's spans when tracing is on (``gateway.tracing``), shared by its attempts; None when off."""

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


class Keeper(Protocol):
    """What the relay asks of a server-held conversation (``gateway.held_responses``, ``gateway.held_threads``)."""

    settled: bool

    async def complete(self, reply: dict[str, Any]) -> None: ...

    async def abandon(self) -> None: ...


@dataclass(frozen=True, slots=True)
class JSONReply:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class StreamReply:
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


def request_id_headers(request_id: str) -> dict[str, str]:
    """Each SDK reads its own header: Anthropic's ``request-id``, OpenAI's ``x-request-id``."""
    return {"request-id": request_id, "x-request-id": request_id}
