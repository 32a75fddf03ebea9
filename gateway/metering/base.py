"""The usage record of one request and the meter protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

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


class Meter(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def record(self, rec: UsageRecord) -> None:
        """Take one record; never blocks the response (writes happen in the background)."""
        ...

    async def flush(self) -> None:
        """Wait until every record taken so far is written (tests, shutdown)."""
        ...
