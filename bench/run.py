"""Relay's benchmark: one command, a table of what the gateway adds over calling the upstream directly.

    .venv/bin/python bench/run.py [--seconds 5] [--concurrency 1,10,50,100] [--backends embedded,postgres]

Starts, on loopback only: the fake upstream (answers at once, N stream chunks, fixed usage), a bare
Litestar + aiohttp relay (no auth, routing or metering: the ceiling), and Relay itself (one uvicorn
worker) on each backend. For each door x upstream dialect x stream/non-stream x concurrency it drives
a closed-loop load (bench/load.py) against the upstream directly, the bare relay and Relay, and prints
requests/s, latency percentiles, the p50 Relay adds over the direct call, time to first byte added,
errors, Relay's ratio to the bare relay, and Relay's CPU per request and peak RSS.
Figures move with the machine's load; compare within one run. No test asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SECRET = "bench-secret-key-" + "b" * 32
PG_ADMIN_URL = os.environ.get("RELAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RELAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CHUNKS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()

    def cpu_seconds(self, *, children: bool = False) -> float:
        """User + system CPU of the process, and with ``children`` of every live descendant (granian's workers)."""
        pids = [self.popen.pid, *(_descendants(self.popen.pid) if children else ())]
        return sum(_cpu_ticks(pid) for pid in pids) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.popen.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def _cpu_ticks(pid: int) -> int:
    try:
        fields = _stat(pid)
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(_stat(int(entry))[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
    found, frontier = [], [pid]
    while frontier:
        kids = [child for child, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def start(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
    return Proc(
        subprocess.Popen(
            args, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    )


def relay_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    out = subprocess.run(
        [PY, "-m", "gateway", *args], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, check=True
    )
    return out.stdout


def setup_relay(backend: str, fake_url: str, work: Path, server: str = "uvicorn") -> tuple[Proc, str, str, callable]:
    env = {"RELAY_SECRET_KEY": SECRET, "RELAY_LOG_LEVEL": "warning", "RELAY_UPSTREAM_ALLOWLIST": "127.0.0.1"}
    work.mkdir(parents=True, exist_ok=True)
    cleanup = lambda: None  # noqa: E731
    if backend == "embedded":
        env["RELAY_DATABASE_URL"] = f"sqlite:///{work / 'bench.db'}"
    else:
        import asyncio

        import asyncpg

        name = f"relay_bench_{os.getpid()}_{server}"

        async def db(sql: str) -> None:
            conn = await asyncpg.connect(PG_ADMIN_URL)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(db(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(db(f'CREATE DATABASE "{name}"'))
        env["RELAY_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        env["RELAY_REDIS_URL"] = REDIS_URL
        relay_cli(env, work, "migrate")
        cleanup = lambda: asyncio.run(db(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # noqa: E731
    relay_cli(env, work, "tenants", "create", "bench")
    relay_cli(
        env, work, "upstreams", "add", "fo", "--tenant", "bench", "--dialect", "openai", "--base-url", fake_url + "/v1"
    )
    relay_cli(
        env, work, "upstreams", "add", "fa", "--tenant", "bench", "--dialect", "anthropic", "--base-url", fake_url
    )
    relay_cli(
        env,
        work,
        "models",
        "add",
        "bench-openai",
        "--tenant",
        "bench",
        "--upstream",
        "fo",
        "--upstream-model",
        "m",
        "--input-price",
        "1",
        "--output-price",
        "2",
    )
    relay_cli(
        env,
        work,
        "models",
        "add",
        "bench-anthropic",
        "--tenant",
        "bench",
        "--upstream",
        "fa",
        "--upstream-model",
        "m",
        "--input-price",
        "1",
        "--output-price",
        "2",
    )
    key = relay_cli(env, work, "keys", "create", "--tenant", "bench", "--allow-custom-models").strip().splitlines()[-1]
    port = free_port()
    if server == "granian":
        from bare_relay import GRANIAN_ARGS

        args = [PY, "-m", "granian", *GRANIAN_ARGS, "--port", str(port), "gateway.app:create_app"]
    else:
        args = [PY, "-m", "gateway", "serve", "--port", str(port)]
    proc = start(args, env=env, cwd=work)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, f"http://127.0.0.1:{port}", key, cleanup


def body(door: str, model: str, stream: bool) -> str:
    doc: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "Say something short."}]}
    if door == "anthropic":
        doc["max_tokens"] = 64
    if stream:
        doc["stream"] = True
    return json.dumps(doc)


def load(url: str, payload: str, headers: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    args = [
        PY,
        str(ROOT / "bench" / "load.py"),
        "--url",
        url,
        "--body",
        payload,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    for h in headers:
        args += ["--header", h]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,10,50,100")
    parser.add_argument("--backends", default="embedded,postgres")
    parser.add_argument(
        "--pairs",
        default="anthropic:anthropic,openai:openai,anthropic:openai,openai:anthropic",
        help="door:upstream-dialect pairs",
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    fake_port, bare_port = free_port(), free_port()
    fake = start(
        [
            PY,
            "-m",
            "gateway.testing.fake_upstream",
            "--port",
            str(fake_port),
            "--chunks",
            str(CHUNKS),
            "--text",
            "word " * CHUNKS,
        ]
    )
    fake_url = f"http://127.0.0.1:{fake_port}"
    bare = start([PY, str(ROOT / "bench" / "bare_relay.py"), "--port", str(bare_port), "--upstream", fake_url])
    wait_http(fake_url + "/v1/models")
    wait_http(f"http://127.0.0.1:{bare_port}/v1/messages")
    header = (
        f"{'backend':9} {'door>up':20} {'mode':6} {'c':>4} | {'direct/s':>8} {'bare/s':>8} {'relay/s':>8} "
        f"{'ratio':>5} | {'p50':>6} {'p90':>6} {'p99':>6} {'+p50':>6} {'+ttfb':>6} | {'err':>4} "
        f"{'cpu ms/req':>10} {'rss MB':>6}"
    )
    print(header)
    print("-" * len(header))
    try:
        for backend in args.backends.split(","):
            relay, relay_url, key, cleanup = setup_relay(backend, fake_url, work / backend)
            try:
                for pair in args.pairs.split(","):
                    door, up = pair.split(":")
                    path = "/v1/messages" if door == "anthropic" else "/v1/chat/completions"
                    model = f"bench-{up}"
                    direct_path = "/v1/messages" if up == "anthropic" else "/v1/chat/completions"
                    for stream in (False, True):
                        for c in levels:
                            d = load(fake_url + direct_path, body(up, "m", stream), [], c, args.seconds)
                            b = (
                                load(
                                    f"http://127.0.0.1:{bare_port}{path}", body(door, "m", stream), [], c, args.seconds
                                )
                                if door == up
                                else None
                            )
                            cpu0 = relay.cpu_seconds()
                            r = load(
                                relay_url + path,
                                body(door, model, stream),
                                [f"authorization: Bearer {key}"],
                                c,
                                args.seconds,
                            )
                            cpu = (relay.cpu_seconds() - cpu0) * 1000 / max(r["ok"], 1)
                            ratio = f"{r['rps'] / b['rps']:.2f}" if b and b["rps"] else "  -  "
                            print(
                                f"{backend:9} {door + '>' + up:20} {'stream' if stream else 'json':6} {c:>4} | "
                                f"{d['rps']:8.0f} {b['rps'] if b else float('nan'):8.0f} {r['rps']:8.0f} "
                                f"{ratio:>5} | {r['p50']:6.2f} {r['p90']:6.2f} {r['p99']:6.2f} "
                                f"{r['p50'] - d['p50']:6.2f} {r['ttfb_p50'] - d['ttfb_p50']:6.2f} | "
                                f"{r['errors']:4d} {cpu:10.3f} {relay.rss_mb():6.0f}",
                                flush=True,
                            )
            finally:
                relay.stop()
                cleanup()
    finally:
        bare.stop()
        fake.stop()


if __name__ == "__main__":
    main()
