"""A closed-loop load generator on loopback: C workers, each sending the next request when the last ends.

Bounded in time and in count. Prints one JSON line: requests/s, latency and time-to-first-byte
percentiles (ms), errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, limit: int) -> dict:
    latencies: list[float] = []
    ttfbs: list[float] = []
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
                        first = None
                        async for _chunk in resp.content.iter_any():
                            if first is None:
                                first = time.perf_counter()
                        if resp.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                end = time.perf_counter()
                latencies.append((end - start) * 1000)
                ttfbs.append(((first or end) - start) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p90": pct(latencies, 90),
        "p99": pct(latencies, 99),
        "ttfb_p50": pct(ttfbs, 50),
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
