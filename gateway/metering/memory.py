"""The embedded meter: in-process counters plus the ledger. One process, no services.

Same counters as ``RedisMeter`` (per key, tenant and model, per day and per minute); minute counters
older than two hours are dropped as new ones arrive, so memory stays bounded.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger
from gateway.metering.redis import counter_fields, counter_names

PRUNE_EVERY = 1000


class MemoryMeter:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.counters: dict[str, Counter[str]] = {}
        self._since_prune = 0

    async def start(self) -> None:
        self._ledger.start()

    async def close(self) -> None:
        await self._ledger.close()

    def record(self, rec: UsageRecord) -> None:
        fields = counter_fields(rec)
        for name, _ttl in counter_names(rec):
            self.counters.setdefault(name, Counter()).update(fields)
        self._ledger.put(rec)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            self._prune()

    def _prune(self) -> None:
        oldest = (datetime.now(UTC) - timedelta(hours=2)).strftime("m%Y%m%d%H%M")
        for name in [n for n in self.counters if ":m" in n and n.rsplit(":", 1)[1] < oldest]:
            del self.counters[name]

    async def flush(self) -> None:
        await self._ledger.flush()
