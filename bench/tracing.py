"""What OpenTelemetry tracing costs a request, off and on (gateway/tracing.py), in-process.

    .venv/bin/python bench/tracing.py [--requests 2000] [--rounds 5]

1. The hooks alone, in nanoseconds of the request thread's CPU per request: a plain function call (the
   floor); the relay's tracing hooks with tracing off, exactly as ``Relay`` runs them (``begin`` returning
   None and the ``is not None`` checks);
   the same hooks on, spans recorded into a tracer provider whose batch processor hands them to an exporter
   that drops them (the SDK's whole cost on the request path: a request span, one attempt span with its
   ``traceparent`` injected, usage attributes, both ended).
2. ``Relay.call`` end to end against the fake upstream on loopback (JSON and a 16-chunk stream), tracing
   off and on (the same dropping exporter), in microseconds of wall time and of process CPU per request; the
   fake upstream runs in the same process, so its share is in both columns alike.

Rounds alternate off and on; the median is printed. Figures move with the machine's load: compare within one
run. Needs the ``[otel]`` extra for the "on" rows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from gateway import tracing
from gateway.calls import Call
from gateway.domain import Dialect, Principal, Route, Upstream, Usage
from gateway.metering import UsageRecord
from gateway.metering.limits import MemoryLimiter
from gateway.relay import Relay
from gateway.testing.fake_upstream import FakeUpstream, Reply
from gateway.upstreams.client import Timeouts, create_session

PRINCIPAL = Principal(key_id="k1", tenant_id="t1", name="bench", prefix="sk-bench")
BODY = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


class Dropping(SpanExporter):
    """Takes every batch and keeps nothing: the exporter's network time is not the request's."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class NullMeter:
    """The relay's meter, minus storage: ``_record`` runs in full up to ``record``."""

    def record(self, rec: UsageRecord) -> None:
        pass


def make_call(route: Route, stream: bool = False) -> Call:
    body = {**BODY, "stream": True} if stream else BODY
    return Call(request_id="req_bench", principal=PRINCIPAL, route=route, door=Dialect.OPENAI, body=body, headers={})


def record(route: Route) -> UsageRecord:
    return UsageRecord(
        request_id="req_bench", tenant_id="t1", key_id="k1", model="m", upstream_id="u1", door_dialect="openai",
        upstream_dialect="openai", stream=False, usage=Usage(12, 30), cost_micro_usd=72, status=200, latency_ms=1,
    )  # fmt: skip


def hooks_ns(route: Route, n: int) -> dict[str, float]:
    """CPU nanoseconds per request of a plain call, and of the relay's tracing hooks (as ``Relay`` runs them)."""
    rec = record(route)
    call = make_call(route)

    def plain(c: Call) -> None:
        return None

    def relay_hooks(c: Call) -> None:
        headers = {"content-type": "application/json"}
        c.trace = tracing.begin(c)  # Relay.call
        if c.trace is not None:  # Relay._attempt, after the plan
            c.trace.attempt(route, headers, c.tries)
        if c.trace is not None:  # Relay._record
            c.trace.finish(rec, route)

    def timed(fn: Callable[[Call], None]) -> float:
        started = time.thread_time_ns()  # this thread's CPU: the batch processor's exporting thread is apart
        for _ in range(n):
            fn(call)
        return (time.thread_time_ns() - started) / n

    return {"plain": timed(plain), "hooks": timed(relay_hooks)}


async def relay_us(relay: Relay, route: Route, stream: bool, n: int) -> tuple[float, float]:
    """Wall and CPU microseconds per ``Relay.call`` (read to the end), sequential."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        reply = await relay.call(make_call(route, stream))
        chunks = getattr(reply, "chunks", None)
        if chunks is not None:
            async for _ in chunks:
                pass
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def main(requests: int, rounds: int) -> None:
    fake = await FakeUpstream().astart()
    fake.set_default(Reply(text="word " * 16, chunks=16, usage=(12, 30)))
    upstream = Upstream("u1", "bench-up", "t1", Dialect.OPENAI, fake.url + "/v1", "up-key")
    route = Route(public_name="m", model_id="m1", upstream=upstream, upstream_model="m-up")
    provider = TracerProvider()
    exporter = Dropping()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    http = create_session()
    relay = Relay(http, http, NullMeter(), MemoryLimiter(), Timeouts())  # type: ignore[arg-type]
    rows: dict[str, list[float]] = {}
    try:
        for _ in range(2):  # warm-up: connections, caches, first imports
            await relay_us(relay, route, True, 50)
        for r in range(rounds):
            for on in (False, True) if r % 2 == 0 else (True, False):
                tracing.install(provider if on else None)  # None: as without OTEL_EXPORTER_OTLP_ENDPOINT
                hooks = hooks_ns(route, requests * 20)
                key = "on" if on else "off"
                rows.setdefault(f"hooks {key}", []).append(hooks["hooks"])
                rows.setdefault("plain call", []).append(hooks["plain"])
                for stream in (False, True):
                    wall, cpu = await relay_us(relay, route, stream, requests)
                    mode = "stream" if stream else "json"
                    rows.setdefault(f"relay {mode} {key} wall", []).append(wall)
                    rows.setdefault(f"relay {mode} {key} cpu", []).append(cpu)
    finally:
        tracing.install(None)
        await http.close()
        await fake.astop()
        provider.shutdown()
    med = {k: statistics.median(v) for k, v in rows.items()}
    plain, off_ns, on_ns = med["plain call"], med["hooks off"], med["hooks on"]
    print(f"tracing hooks per request, median of {rounds} rounds of {requests * 20} (ns):")
    print(f"  plain function call            {plain:8.0f}")
    print(f"  hooks, tracing off             {off_ns:8.0f}   (+{off_ns - plain:.0f} over plain)")
    print(f"  hooks, tracing on (2 spans)    {on_ns:8.0f}")
    print(f"Relay.call against the fake upstream, median of {rounds} rounds of {requests} (us per request):")
    for mode in ("json", "stream"):
        for what in ("wall", "cpu"):
            a, b = med[f"relay {mode} off {what}"], med[f"relay {mode} on {what}"]
            print(f"  {mode:6} {what:4}  off {a:8.1f}   on {b:8.1f}   (+{b - a:.1f}, {100 * (b - a) / a:+.1f} %)")
    print(f"spans exported (dropped) while on: {exporter.spans}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
