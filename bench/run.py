"""Relay's benchmark: one command, a table of what the gateway adds over calling the upstream directly.

    .venv/bin/python bench/run.py [--seconds 5] [--concurrency 1,10,50,100] [--backends embedded,postgres]
                                  [--doors anthropic,openai,responses] [--rounds 1]

Starts, on loopback only: the fake upstream (answers at once, N stream chunks, fixed usage), a bare
Litestar + aiohttp relay (no auth, routing or metering: the ceiling), and Relay itself (one uvicorn
worker) on each backend. For each door x upstream dialect x stream/non-stream x concurrency it drives
a closed-loop load (bench/load.py) against the upstream directly, the bare relay and Relay, and prints
requests/s, latency percentiles, the p50 Relay adds over the direct call, time to first byte added,
errors, Relay's ratio to the bare relay, and Relay's CPU per request and peak RSS.
Figures move with the machine's load; compare within one run. No test asserts on them.

Doors: ``anthropic`` (/v1/messages), ``openai`` (the Chat door, /v1/chat/completions) and ``responses``
(/v1/responses, body ``{"model", "input", "stream"}``). Upstream dialects: ``anthropic``, ``openai``
(Chat Completions only: the Responses door converts) and ``responses`` (an openai-dialect upstream
whose profile says ``supports_responses``: the Responses door passes through). ``--doors`` picks
the doors (default ``anthropic,openai``); with ``responses`` the Chat door's rows on the same
upstreams are measured too, each next to the Responses door's, and a last table compares them
(Responses/Chat ratios of requests/s, p50 added and CPU per request; the goal is within 10 %).
``--rounds`` repeats the measurements, alternating which door goes first; the comparison takes the median.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
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
DOOR_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions", "responses": "/v1/responses"}
DEFAULT_PAIRS = "anthropic:anthropic,openai:openai,anthropic:openai,openai:anthropic"
RESPONSES_PAIRS = "responses:openai,responses:anthropic,responses:responses"


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
    relay_cli(env, work, "upstreams", "add", "fr", "--tenant", "bench", "--dialect", "openai", "--base-url",
              fake_url + "/v1", "--profile", '{"supports_responses": true}')  # fmt: skip
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
    relay_cli(env, work, "models", "add", "bench-responses", "--tenant", "bench", "--upstream", "fr",
              "--upstream-model", "m", "--input-price", "1", "--output-price", "2")  # fmt: skip
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


def body(door: str, model: str, stream: bool, *, store: bool | None = None) -> str:
    """``store`` (Responses door only): None leaves it out, so Relay keeps the turn (the API's default)."""
    doc: dict[str, object]
    if door == "responses":
        doc = {"model": model, "input": "Say something short."}
        if store is not None:
            doc["store"] = store
    else:
        doc = {"model": model, "messages": [{"role": "user", "content": "Say something short."}]}
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


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for pair in text.split(","):
        door, up = pair.split(":")
        out.append((door, up))
    return out


def select_pairs(pairs: str | None, doors: str | None) -> list[tuple[str, str]]:
    """The door:upstream pairs to run; with the Responses door, the Chat door on the same upstreams too."""
    if pairs is not None:
        chosen = [p for p in _pairs(pairs) if doors is None or p[0] in doors.split(",")]
        twins = [twin for p in chosen if (twin := chat_twin(*p)) is not None]
        return list(dict.fromkeys(chosen + twins))
    wanted = (doors or "anthropic,openai").split(",")
    unknown = set(wanted) - set(DOOR_PATHS)
    if unknown:
        raise SystemExit(f"unknown door(s): {', '.join(sorted(unknown))}")
    baseline = {("openai", "openai"), ("openai", "anthropic")} if "responses" in wanted else set()
    return [p for p in _pairs(f"{DEFAULT_PAIRS},{RESPONSES_PAIRS}") if p[0] in wanted or p in baseline]


def chat_twin(door: str, up: str) -> tuple[str, str] | None:
    """The Chat-door pair a Responses-door pair is compared with (a native upstream: the Chat passthrough)."""
    return ("openai", "openai" if up == "responses" else up) if door == "responses" else None


def schedule(pairs: list[tuple[str, str]], levels: list[int], rounds: int) -> list[tuple[int, str, str, bool, int]]:
    """(round, door, upstream, stream, c), a Responses pair and its Chat twin measured back to back.

    Groups run by upstream (a native Responses upstream next to the Chat upstream), mode and
    concurrency; odd rounds reverse the door order inside each group so drift hits both alike.
    """
    groups: dict[tuple[str, bool, int], list[tuple[str, str]]] = {}
    for door, up in pairs:
        twin = chat_twin(door, up)
        anchor = twin[1] if twin else up
        for stream in (False, True):
            for c in levels:
                groups.setdefault((anchor, stream, c), []).append((door, up))
    out = []
    for n in range(rounds):
        for (_, stream, c), members in groups.items():
            for door, up in members if n % 2 == 0 else reversed(members):
                out.append((n, door, up, stream, c))
    return out


def compare(backend: str, results: dict[tuple[str, str, bool, int], list[dict[str, float]]], note: str = "") -> None:
    """Responses door against the Chat door on the same upstream: the issue's 10 % budget."""
    rows = [(key, chat_twin(key[0], key[1])) for key in results if key[0] == "responses"]
    rows = [(key, (*twin, key[2], key[3])) for key, twin in rows if twin and (*twin, key[2], key[3]) in results]
    if not rows:
        return

    def med(key: tuple[str, str, bool, int], field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    print()
    rounds = len(next(iter(results.values())))
    print(f"Responses door vs Chat door ({backend}{note}; median of {rounds} round(s); R/C = Responses / Chat)")
    head = (
        f"{'door':9} {'upstream':9} {'mode':6} {'c':>3} | {'relay/s':>7} {'+p50 ms':>7} {'+ttfb':>6} "
        f"{'cpu/req':>7} | {'R/C rps':>7} {'R/C +p50':>8} {'R/C cpu':>7} {'10 %':>4}"
    )
    print(head)
    print("-" * len(head))
    for r_key, c_key in rows:
        for key in (c_key, r_key):
            door = "chat" if key[0] == "openai" else key[0]
            up = "native" if key[1] == "responses" else key[1]
            line = (
                f"{door:9} {up:9} {'stream' if key[2] else 'json':6} {key[3]:>3} | {med(key, 'rps'):7.0f} "
                f"{med(key, 'added'):7.2f} {med(key, 'added_ttfb'):6.2f} {med(key, 'cpu'):7.3f} |"
            )
            if key is r_key:
                rps = med(r_key, "rps") / med(c_key, "rps")
                added = med(r_key, "added") / med(c_key, "added") if med(c_key, "added") > 0 else float("nan")
                cpu = med(r_key, "cpu") / med(c_key, "cpu")
                # the budget: p50 added at c=1, requests/s under concurrency, each within 10 % of the Chat door's
                within = added <= 1.10 if key[3] == 1 else rps >= 0.90
                line += f" {rps:7.2f} {added:8.2f} {cpu:7.2f} {'ok' if within else 'OVER':>4}"
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,10,50,100")
    parser.add_argument("--backends", default="embedded,postgres")
    parser.add_argument(
        "--pairs",
        default=None,
        help=f"door:upstream-dialect pairs (default {DEFAULT_PAIRS}, plus {RESPONSES_PAIRS} with --doors responses); "
        "a responses pair brings the Chat door's pair it is compared with",
    )
    parser.add_argument(
        "--doors",
        default=None,
        help="doors to measure, of anthropic,openai,responses (default anthropic,openai); "
        "responses brings the Chat door's rows it is compared with",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement, alternating door order")
    parser.add_argument(
        "--no-store",
        action="store_true",
        help='send "store": false through the Responses door (Relay then keeps no turn; the Chat door keeps none)',
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    pairs = select_pairs(args.pairs, args.doors)
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
            results: dict[tuple[str, str, bool, int], list[dict[str, float]]] = {}
            try:
                direct: dict[tuple[int, str, bool, int], dict[str, float]] = {}
                for n, door, up, stream, c in schedule(pairs, levels, args.rounds):
                    path = DOOR_PATHS[door]
                    model = f"bench-{up}"
                    if (n, up, stream, c) not in direct:  # one direct call per upstream, shared by the doors on it
                        direct[n, up, stream, c] = load(
                            fake_url + DOOR_PATHS[up], body(up, "m", stream), [], c, args.seconds
                        )
                    d = direct[n, up, stream, c]
                    b = (
                        load(f"http://127.0.0.1:{bare_port}{path}", body(door, "m", stream), [], c, args.seconds)
                        if door == up and door != "responses"
                        else None
                    )
                    cpu0 = relay.cpu_seconds()
                    r = load(
                        relay_url + path,
                        body(door, model, stream, store=False if args.no_store else None),
                        [f"authorization: Bearer {key}"],
                        c,
                        args.seconds,
                    )
                    cpu = (relay.cpu_seconds() - cpu0) * 1000 / max(r["ok"], 1)
                    ratio = f"{r['rps'] / b['rps']:.2f}" if b and b["rps"] else "  -  "
                    added, added_ttfb = r["p50"] - d["p50"], r["ttfb_p50"] - d["ttfb_p50"]
                    results.setdefault((door, up, stream, c), []).append(
                        {"rps": r["rps"], "added": added, "added_ttfb": added_ttfb, "cpu": cpu}
                    )
                    print(
                        f"{backend:9} {door + '>' + up:20} {'stream' if stream else 'json':6} {c:>4} | "
                        f"{d['rps']:8.0f} {b['rps'] if b else float('nan'):8.0f} {r['rps']:8.0f} "
                        f"{ratio:>5} | {r['p50']:6.2f} {r['p90']:6.2f} {r['p99']:6.2f} "
                        f"{added:6.2f} {added_ttfb:6.2f} | "
                        f"{r['errors']:4d} {cpu:10.3f} {relay.rss_mb():6.0f}",
                        flush=True,
                    )
            finally:
                relay.stop()
                cleanup()
            compare(backend, results, ", store: false" if args.no_store else "")
    finally:
        bare.stop()
        fake.stop()


if __name__ == "__main__":
    main()
