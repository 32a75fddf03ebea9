"""Usage of every request: counters (Redis or in-process) and the durable ledger (``usage_events``).

``RedisMeter`` and the embedded ``MemoryMeter`` share one protocol, ``Meter``; both hand every
record to the ``Ledger``, which writes batches to the database off the response path.
"""

from gateway.metering.base import Meter, UsageRecord, request_log_line
from gateway.metering.ledger import Ledger
from gateway.metering.memory import MemoryMeter
from gateway.metering.redis import RedisMeter

__all__ = ["Ledger", "MemoryMeter", "Meter", "RedisMeter", "UsageRecord", "request_log_line"]
