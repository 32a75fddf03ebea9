"""Memory with many streams open at once: N concurrent slow streams through Relay, peak RSS of the gateway.

    .venv/bin/python bench/open_streams.py [--streams 1000] [--door openai|anthropic] [--upstream openai|anthropic]

``--upstream`` other than ``--door`` measures translated streams (Claude Code on an OpenAI-dialect
model is ``--door anthropic --upstream openai``); by default the upstream speaks the door's dialect.

The fake upstream sends 16 chunks 0.5 s apart, so every stream stays open for about 8 s; the script
opens all of them, waits until each has received its first chunk, samples the gateway's RSS while
they are all open, and reads them to the end. Prints the RSS before, at the peak, and the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from run import PY, free_port, setup_relay, start, wait_http


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def drive(url: str, key: str, n: int, door: str, upstream: str, pid: int) -> dict[str, float]:
    body = {"model": f"bench-{upstream}", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    path = "/v1/chat/completions" if door == "openai" else "/v1/messages"
    if door == "anthropic":
        body["max_tokens"] = 64
    started = asyncio.Event()
    first = 0
    errors = 0
    peak = 0.0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal first, errors
        try:
            async with session.post(url + path, json=body, headers={"authorization": f"Bearer {key}"}) as resp:
                got_first = False
                async for _ in resp.content.iter_any():
                    if not got_first:
                        got_first = True
                        first += 1
                        if first == n:
                            started.set()
                if resp.status != 200:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.1)

    before = rss_mb(pid)
    connector = aiohttp.TCPConnector(limit=n + 10)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        sampler = asyncio.create_task(sample())
        tasks = [asyncio.create_task(one(session)) for _ in range(n)]
        try:
            await asyncio.wait_for(started.wait(), timeout=60)
            all_open = rss_mb(pid)
        except TimeoutError:
            all_open = float("nan")
        await asyncio.gather(*tasks)
        sampler.cancel()
    return {
        "streams": n,
        "rss_before_mb": before,
        "rss_all_open_mb": all_open,
        "rss_peak_mb": peak,
        "first_chunks": first,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--door", choices=["openai", "anthropic"], default="openai")
    parser.add_argument("--upstream", choices=["openai", "anthropic"], default=None)
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay-streams-"))
    fake_port = free_port()
    fake = start([PY, "-m", "gateway.testing.fake_upstream", "--port", str(fake_port), "--chunks", "16",
                  "--text", "word " * 16, "--chunk-delay", "0.5"])  # fmt: skip
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_http(fake_url + "/v1/models")
    relay, relay_url, key, cleanup = setup_relay(args.backend, fake_url, work / args.backend)
    try:
        started = time.monotonic()
        upstream = args.upstream or args.door
        result = asyncio.run(drive(relay_url, key, args.streams, args.door, upstream, relay.popen.pid))
        result["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(result))
    finally:
        relay.stop()
        cleanup()
        fake.stop()
        subprocess.run(["true"])


if __name__ == "__main__":
    main()
