"""A closed-loop load generator on loopback: C workers, each sending the next request when the last ends.

Bounded in time and in count. Prints one JSON line: requests/s, latency and time-to-first-byte
percentiles (ms), errors.

A JSON answer is complete at the end of its body. A stream (``text/event-stream``) is complete when
its terminal event has fully arrived, whatever the door: ``data: [DONE]`` (Chat Completions),
``event: message_stop`` (Anthropic), ``event: response.completed`` (Responses, which sends no
``[DONE]``). Latency stops there; ``eof_lag_p50`` is how long the body then stays open. A stream
whose body ends without a terminal event, or whose end is a failure (``event: error``,
``response.failed``, ``response.incomplete``), counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

# Terminal events, by door, matched at the start of a line of a complete (blank-line-closed) SSE event.
DONE = (b"\ndata: [DONE]\n", b"\nevent: message_stop\n", b"\nevent: response.completed\n")
FAILED = (b"\nevent: error\n", b"\nevent: response.failed\n", b"\nevent: response.incomplete\n")


def terminal(events: bytes) -> bool | None:
    """True if ``events`` (whole SSE events, each closed by a blank line, led by a newline) hold a
    success terminal event, False a failure one, else None."""
    if any(marker in events for marker in FAILED):
        return False
    if any(marker in events for marker in DONE):
        return True
    return None


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, limit: int) -> dict:
    latencies: list[float] = []
    ttfbs: list[float] = []
    eof_lags: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 10)) as session:

        async def worker() -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and sent < limit:
                sent += 1
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        stream = resp.content_type == "text/event-stream"
                        first = done = None
                        outcome: bool | None = None
                        partial = b"\n"  # the unfinished event, after the newline that ended the last one
                        async for chunk in resp.content.iter_any():
                            if first is None:
                                first = time.perf_counter()
                            if stream and outcome is None:
                                partial += chunk
                                cut = partial.rfind(b"\n\n") + 1
                                if cut:
                                    outcome = terminal(partial[:cut])
                                    partial = partial[cut:]
                                    if outcome is not None:
                                        done = time.perf_counter()
                        if resp.status != 200 or (stream and outcome is not True):
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                eof = time.perf_counter()
                end = done or eof
                latencies.append((end - start) * 1000)
                ttfbs.append(((first or end) - start) * 1000)
                eof_lags.append((eof - end) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p90": pct(latencies, 90),
        "p99": pct(latencies, 99),
        "ttfb_p50": pct(ttfbs, 50),
        "eof_lag_p50": pct(eof_lags, 50),
        "ok": len(latencies),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=200_000)
    args = parser.parse_args()
    headers = {"content-type": "application/json"}
    for h in args.header:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.body.encode(), headers, args.concurrency, args.seconds, args.limit))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
