"""The embedded meter: in-process counters plus the ledger. One process, no services."""

from __future__ import annotations

from collections import Counter

from gateway.metering.base import UsageRecord
from gateway.metering.ledger import Ledger


class MemoryMeter:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.counters: Counter[str] = Counter()

    async def start(self) -> None:
        self._ledger.start()

    async def close(self) -> None:
        await self._ledger.close()

    def record(self, rec: UsageRecord) -> None:
        for scope in (f"key:{rec.key_id}", f"tenant:{rec.tenant_id}", f"model:{rec.model}"):
            self.counters[f"{scope}:requests"] += 1
            self.counters[f"{scope}:input_tokens"] += rec.usage.input_tokens
            self.counters[f"{scope}:output_tokens"] += rec.usage.output_tokens
            self.counters[f"{scope}:cache_read_tokens"] += rec.usage.cache_read_tokens
            self.counters[f"{scope}:cache_write_tokens"] += rec.usage.cache_write_tokens
            self.counters[f"{scope}:cost_micro_usd"] += rec.cost_micro_usd
        self._ledger.put(rec)

    async def flush(self) -> None:
        await self._ledger.flush()
