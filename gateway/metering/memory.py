"""The embedded meter: the ledger alone. One process, no services.

Usage figures of the embedded default come from the ledger and its daily rollup; the per-minute
counters exist for Redis, where several workers and the limiter share them.
"""

from __future__ import annotations

from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger


class MemoryMeter:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def start(self) -> None:
        self._ledger.start()

    async def close(self) -> None:
        await self._ledger.close()

    def record(self, rec: UsageRecord) -> None:
        self._ledger.put(rec)

    async def flush(self) -> None:
        await self._ledger.flush()
