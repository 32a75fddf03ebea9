"""The usage record of one request and the meter protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

import msgspec

from gateway.domain import Usage


@dataclass(frozen=True, slots=True)
class UsageRecord:
    request_id: str
    tenant_id: str
    key_id: str | None
    model: str
    upstream_id: str | None
    door_dialect: str
    upstream_dialect: str | None
    stream: bool
    usage: Usage
    cost_micro_usd: int
    status: int
    latency_ms: int
    ttft_ms: int | None = None
    error_code: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempts: int = 1
    """Upstream attempts inside the request (retries and fallbacks); the failed ones are in ``tries``."""
    served_model: str | None = None
    """The fallback model that answered, when not ``model`` (the one asked for)."""
    tries: tuple[tuple[str, int, str | None], ...] = ()
    """Failed attempts before the last: (model, status, error code), for the log line (not stored)."""
    conversion_notes: tuple[str, ...] = ()
    """What translation dropped or changed (the ``relay-conversion-notes`` header), kept in the request log."""
    upstream_key_id: str | None = None
    """The upstream pool key that carried the last attempt (None: a catalog provider's single key)."""
    asked_model: str | None = None
    """The model name the client sent, when the key's aliases routed it to ``model``."""


class Meter(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def record(self, rec: UsageRecord) -> None:
        """Take one record; never blocks the response (writes happen in the background)."""
        ...

    async def flush(self) -> None:
        """Wait until every record taken so far is written (tests, shutdown)."""
        ...


def request_log_line(
    rec: UsageRecord,
    key_prefix: str,
    notes: tuple[str, ...] = (),
    client_request_id: str | None = None,
    *,
    client_ip: str | None = None,
    upstream: str | None = None,
    upstream_base_url: str | None = None,
    upstream_ms: int | None = None,
) -> LogJson:
    """The request line, ready to log: ids, where it went, tokens, cost, timings. Never a secret or a prompt.

    ``client_ip``, the upstream's name and host and ``upstream_ms`` (the last upstream exchange, from
    sending it to its response headers) are for the log only: the ledger row does not keep them.
    """
    u = rec.usage
    doc: dict[str, object] = {
        "event": "request",
        "request_id": rec.request_id,
        "tenant_id": rec.tenant_id,
        "key": key_prefix,
        "model": rec.model,
        "door": rec.door_dialect,
        "upstream": upstream,
        "upstream_host": upstream_host(upstream_base_url),
        "upstream_dialect": rec.upstream_dialect,
        "upstream_key_id": rec.upstream_key_id,
        "stream": rec.stream,
        "status": rec.status,
        "error": rec.error_code,
        "attempts": rec.attempts,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "estimated": u.estimated,
        "cost_micro_usd": rec.cost_micro_usd,
        "latency_ms": rec.latency_ms,
        "upstream_ms": upstream_ms,
        "ttft_ms": rec.ttft_ms,
        "client_ip": client_ip,
    }
    if rec.asked_model:
        doc["asked_model"] = rec.asked_model
    if rec.attempts > 1:
        doc["served_model"] = rec.served_model
        doc["failed_attempts"] = [{"model": m, "status": st, "error": code} for m, st, code in rec.tries]
    if client_request_id:
        doc["client_request_id"] = client_request_id
    if notes:
        doc["conversion_notes"] = list(notes)
    return LogJson(doc)


class LogJson:
    """The request line as a log argument: its JSON text is made only if a handler asks for the message.

    ``log.info("%s", line, extra=line.extra)``: the JSON formatter (``gateway.logs``) spreads ``extra``'s
    fields into its one object; a plain handler's ``getMessage()`` gets the same fields as a JSON string.
    """

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, object]) -> None:
        self.fields = fields

    @property
    def extra(self) -> dict[str, object]:
        return {"fields": self.fields}

    def __str__(self) -> str:
        return msgspec.json.encode(self.fields).decode()


@lru_cache(maxsize=1024)
def upstream_host(base_url: str | None) -> str | None:
    """``host:port`` of an upstream's base URL (never its path, query or any credentials in it)."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host
