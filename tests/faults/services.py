"""Private services for the fault suite: a Postgres cluster, a Redis and a multi-worker Relay, each a real
process on a spare loopback port that a test may stop, kill or restart. The shared services on 5432/6379
are never touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from support import REPO, free_port, service_missing


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        service_missing("PostgreSQL server binaries", FileNotFoundError(name))
    return str(found[-1])


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; CI runs as root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresCluster:
    """``initdb`` into a temp directory; ``start``/``stop`` (fast or immediate) as often as a test likes."""

    def __init__(self) -> None:
        # Not under pytest's temp root: as root, that is private to root and the postgres user cannot enter it.
        self.root = Path(tempfile.mkdtemp(prefix="relay-faults-pg-"))
        self.dir = self.root / "pgdata"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", str(self.dir), "-U", "postgres", "--auth=trust", "-N"]),
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.dir), *args]), check=True, capture_output=True)

    def start(self) -> None:
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=200"
        self._ctl("-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def destroy(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.dir), "-m", "immediate", "-w", "stop"]), capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        _wait(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode == 0)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, like a stalled Redis."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class Relay:
    """``relay serve`` in its own process group: the master and its workers are real processes to signal."""

    def __init__(self, env: dict[str, str], workers: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env, "RELAY_PORT": str(self.port), "RELAY_LOG_LEVEL": "warning"}
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--workers", str(self.workers)],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        _wait(self._ready, timeout=60)
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output += line

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"relay exited: {self.output.decode(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        if self.workers == 1:
            return [self.proc.pid]
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        # uvicorn's workers are spawned by multiprocessing, which may also start a resource tracker: skip it.
        return [int(p) for p in out.split() if b"resource_tracker" not in _cmdline(int(p))]

    def kill_worker(self) -> int:
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_replaced(self, killed: int, timeout: float) -> float:
        """Wait until the supervisor has reaped ``killed`` and started a worker in its place; returns how long
        it took. uvicorn notices a dead worker on its half-second round, but only after pinging every live
        worker, and a worker busy or still importing answers late (``relay serve`` waits up to 30 s for it,
        ``WORKER_HEALTHCHECK_TIMEOUT_S``), so this is polled, not slept."""
        started = time.monotonic()
        while killed in (pids := self.worker_pids()) or len(pids) < self.workers:
            assert time.monotonic() - started < timeout, f"worker {killed} not replaced within {timeout} s: {pids}"
            time.sleep(0.1)
        return time.monotonic() - started

    def terminate(self, timeout: float) -> float:
        """SIGTERM the master and wait; returns how long it took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the master and every worker (the end of a test, or a machine going away)."""
        if self.proc is not None and self.proc.poll() is None:
            workers = self.worker_pids() if self.workers > 1 else []
            self.proc.kill()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _wait(ready: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("service did not become ready")
        time.sleep(0.1)


@dataclass
class Load:
    """Clients sending chat completions (JSON and streams alternately) until stopped, counting full answers."""

    url: str
    key: str
    model: str
    clients: int = 8
    extra: dict[str, object] = field(default_factory=dict)
    """More fields of every request's body (e.g. ``max_tokens``)."""
    statuses: dict[int, int] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for n in range(self.clients):
            t = threading.Thread(target=self._client, args=(n % 2 == 0,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _client(self, stream: bool) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        body = {"model": self.model, "messages": [{"role": "user", "content": "hello"}], "stream": stream, **self.extra}
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self._stop.is_set():
                try:
                    request_id = self._once(http, headers, body, stream)
                except httpx.HTTPError:
                    request_id = None
                with self._lock:
                    if request_id:
                        self.answered.add(request_id)
                    else:
                        self.failed += 1
                if request_id is None:
                    time.sleep(0.05)

    def _once(self, http: httpx.Client, headers: dict[str, str], body: dict[str, object], stream: bool) -> str | None:
        """The request id of a fully answered 200 (a stream read to ``[DONE]``), else None."""
        with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp:
            raw = resp.read()
            with self._lock:
                self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
            if resp.status_code != 200:
                return None
            if stream and not raw.rstrip().endswith(b"data: [DONE]"):
                return None
            return resp.headers["request-id"]
