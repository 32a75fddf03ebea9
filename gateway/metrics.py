"""Prometheus metrics of the gateway: requests, latency and time-to-first-token histograms, tokens, cost,
upstream errors by upstream, and circuit-breaker state.

With several workers (``relay serve --workers N``) the command points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before the workers start, and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from gateway.metering.base import UsageRecord

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

REQUESTS = Counter("relay_requests_total", "Requests relayed, by door, model and status", ["door", "model", "status"])
LATENCY = Histogram("relay_request_duration_seconds", "Time to the last byte", ["door", "model"], buckets=_BUCKETS)
TTFT = Histogram("relay_time_to_first_token_seconds", "Streams: time to the first event", ["door", "model"],
                 buckets=_BUCKETS)  # fmt: skip
TOKENS = Counter("relay_tokens_total", "Tokens, by kind and model", ["kind", "model"])
COST = Counter("relay_cost_micro_usd_total", "Cost in micro-USD, by model", ["model"])
UPSTREAM_ERRORS = Counter("relay_upstream_errors_total", "Failed upstream attempts, by upstream and code",
                          ["upstream", "code"])  # fmt: skip
CIRCUIT_OPEN = Gauge("relay_circuit_open", "1 while an upstream's circuit breaker is open", ["upstream"],
                     multiprocess_mode="max")  # fmt: skip


class _Series(NamedTuple):
    requests: Any
    latency: Any
    ttft: Any
    tokens: tuple[Any, ...]  # input, output, cache_read, cache_write
    cost: Any


_series: dict[tuple[str, str, int], _Series] = {}


def _series_for(door: str, model: str, status: int) -> _Series:
    """The labelled children of one (door, model, status), looked up once: ``labels()`` locks and validates."""
    key = (door, model, status)
    found = _series.get(key)
    if found is None:
        found = _series[key] = _Series(
            REQUESTS.labels(door, model, str(status)),
            LATENCY.labels(door, model),
            TTFT.labels(door, model),
            tuple(TOKENS.labels(kind, model) for kind in ("input", "output", "cache_read", "cache_write")),
            COST.labels(model),
        )
    return found


def observe(rec: UsageRecord, upstream_name: str) -> None:
    """Count one relayed attempt (called once per attempt; a dict lookup and a few increments)."""
    series = _series_for(rec.door_dialect, rec.model, rec.status)
    series.requests.inc()
    series.latency.observe(rec.latency_ms / 1000)
    if rec.ttft_ms is not None:
        series.ttft.observe(rec.ttft_ms / 1000)
    u = rec.usage
    for child, n in zip(
        series.tokens, (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens), strict=True
    ):
        if n:
            child.inc(n)
    if rec.cost_micro_usd:
        series.cost.inc(rec.cost_micro_usd)
    if rec.error_code:
        UPSTREAM_ERRORS.labels(upstream_name, rec.error_code).inc()


def set_circuit(upstream_name: str, is_open: bool) -> None:
    CIRCUIT_OPEN.labels(upstream_name).set(1 if is_open else 0)


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
