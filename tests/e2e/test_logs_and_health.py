"""`relay serve` as a process: JSON logs (every line), the request line's fields, text logs, health under
RELAY_ROOT_PATH at both paths, and RELAY_FORWARDED_ALLOW_IPS (client IP and Secure cookies from a trusted proxy)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import SECRET, Seeder, base_settings, free_port, prepare_database

from admin_ui import sessions as admin_sessions
from gateway.logs import JsonFormatter
from gateway.settings import Settings, SettingsError
from gateway.testing.fake_upstream import FakeUpstream, Reply

UPSTREAM_SECRET = "up-secret-for-the-log-test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PROXY_ENV = ("RELAY_FORWARDED_ALLOW_IPS", "RELAY_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS")


class Served:
    """``relay serve`` in a subprocess; its stdout and stderr lines collected as they come."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k not in PROXY_ENV}
        full.update(
            RELAY_DATABASE_URL=f"sqlite:///{tmp / 'relay.db'}",
            RELAY_SECRET_KEY=SECRET,
            RELAY_UPSTREAM_ALLOWLIST="127.0.0.1",
            RELAY_UPSTREAM_RETRIES="0",
            RELAY_PORT=str(self.port),
            RELAY_GC_TUNING="off",
            **env,
        )
        self.root = env.get("RELAY_ROOT_PATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            cwd=tmp,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(s,), daemon=True) for s in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self._readers:
            reader.start()
        self.wait_for(lambda: self._up(), "relay serve did not come up", timeout_s=40)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}{self.root}"

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def _up(self) -> bool:
        assert self.proc.poll() is None, "relay serve exited:\n" + "\n".join(self.lines)
        try:
            return httpx.get(f"http://{self.host}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_for(self, ready: Callable[[], Any], what: str, timeout_s: float = 10) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (found := ready()):
            assert time.monotonic() < deadline, what + "\n" + "\n".join(self.lines)
            time.sleep(0.05)
        return found

    def stop(self) -> list[str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=5)
        return self.lines


class SimpleWorld:
    def __init__(self, *, tmp: Path, fake: FakeUpstream, tenant_id: str, key: str, prefix: str) -> None:
        self.tmp, self.fake, self.tenant_id, self.key, self.prefix = tmp, fake, tenant_id, key, prefix


@pytest.fixture
def seeded(tmp_path: Path, fake: FakeUpstream) -> Iterator[SimpleWorld]:
    settings = base_settings(f"sqlite:///{tmp_path / 'relay.db'}", None)
    prepare_database(settings)
    seed = Seeder(settings)
    tenant = seed.tenant()
    up = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai", api_key=UPSTREAM_SECRET, name="fake-openai")
    seed.model(tenant, up, "my-gpt", upstream_model="gpt-upstream-id", input_price=1.0, output_price=2.0)
    key = seed.key(tenant)
    yield SimpleWorld(tmp=tmp_path, fake=fake, tenant_id=tenant.id, key=key.secret, prefix=key.row.prefix)


def chat(served: Served, key: str, model: str = "my-gpt", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        served.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        json={"model": model, "messages": [{"role": "user", "content": "a prompt nobody may log"}]},
        timeout=30,
    )


def request_line(served: Served, request_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for line in list(served.lines):
            if request_id in line and line.startswith("{"):
                doc = json.loads(line)
                if doc.get("event") == "request":
                    return doc
        return None

    found: dict[str, Any] = served.wait_for(find, f"no request line for {request_id}")
    return found


def sign_in(served: Served, password: str, *, https: bool) -> str:
    """Sign the first admin in through a proxy that says ``X-Forwarded-Proto: https``; the session's Set-Cookie."""
    scheme = "https" if https else "http"
    with httpx.Client(headers={"origin": f"{scheme}://{served.host}", "x-forwarded-proto": "https"}) as http:
        form = http.get(served.url + "/admin/login")
        assert form.status_code == 200, form.text[:300]
        pre = next(h for h in form.headers.get_list("set-cookie") if h.startswith(admin_sessions.PRE_COOKIE + "="))
        csrf = CSRF.search(form.text)
        assert csrf
        r = http.post(
            served.url + "/admin/login",
            data={"csrf": csrf.group(1), "email": "admin@localhost", "password": password},
            headers={"cookie": pre.split(";", 1)[0]},  # httpx keeps Secure cookies off plain http: send it by hand
        )
    assert r.status_code == 303, r.text[:300]
    names = (admin_sessions.SECURE_COOKIE + "=", admin_sessions.COOKIE + "=")
    return next(h for h in r.headers.get_list("set-cookie") if h.startswith(names))


def test_json_logs_every_line_and_the_request_line(seeded: SimpleWorld) -> None:
    fake = seeded.fake
    served = Served(
        seeded.tmp,
        {"RELAY_LOG_FORMAT": "json", "RELAY_FORWARDED_ALLOW_IPS": "127.0.0.1", "RELAY_ROOT_PATH": "/relay"},
    )
    try:
        # Health: under the prefix and, for probes that call the container directly, without it.
        for path in ("/healthz", "/readyz", "/relay/healthz", "/relay/readyz"):
            r = httpx.get(f"http://{served.host}{path}", timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "ok", (path, r.text)
        assert httpx.get(f"http://{served.host}/v1/models", timeout=10).status_code == 404  # only the probes

        fake.enqueue(Reply(text="ok", usage=(12, 3), delay_s=0.2))
        ok = chat(served, seeded.key)
        assert ok.status_code == 200, ok.text
        missing = chat(served, seeded.key, model="no-such-model")
        assert missing.status_code == 404
        bad_key = chat(served, "sk-" + "0" * 48)
        assert bad_key.status_code == 401
        fake.enqueue(Reply(status=500, body=b'{"error":{"message":"boom","type":"server_error"}}'))
        failed = chat(served, seeded.key)
        assert failed.status_code >= 500, failed.text
        fake.enqueue(Reply(text="ok", usage=(1, 1)))
        proxied = chat(served, seeded.key, headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"})
        assert proxied.status_code == 200

        line = request_line(served, ok.headers["request-id"])
        assert line["level"] == "INFO" and line["logger"] == "relay.request" and line["message"] == "request"
        assert (line["tenant_id"], line["key"], line["model"]) == (seeded.tenant_id, seeded.prefix, "my-gpt")
        assert (line["upstream"], line["upstream_host"]) == ("fake-openai", fake.url.removeprefix("http://"))
        assert (line["status"], line["attempts"], line["client_ip"]) == (200, 1, "127.0.0.1")
        assert (line["input_tokens"], line["output_tokens"], line["cost_micro_usd"]) == (12, 3, 12 * 1 + 3 * 2)
        assert 200 <= line["upstream_ms"] <= line["latency_ms"] < 10_000
        assert isinstance(line["ts"], str) and line["ts"].endswith("Z")

        line = request_line(served, failed.headers["request-id"])
        assert line["status"] == failed.status_code and line["attempts"] == 1 and line["error"]
        assert line["upstream_host"] == fake.url.removeprefix("http://") and line["client_ip"] == "127.0.0.1"
        assert 0 <= line["upstream_ms"] <= line["latency_ms"]

        line = request_line(served, missing.headers["request-id"])
        assert line["logger"] == "relay.request" and isinstance(line["latency_ms"], int)
        assert (line["status"], line["model"], line["key"], line["attempts"]) == (
            404,
            "no-such-model",
            seeded.prefix,
            0,
        )
        line = request_line(served, bad_key.headers["request-id"])
        assert line["status"] == 401 and line["error"] and "key" not in line and line["client_ip"] == "127.0.0.1"

        # From the trusted proxy: the client's own address, and https (the session cookie is Secure).
        assert request_line(served, proxied.headers["request-id"])["client_ip"] == "203.0.113.9"
        first_run = served.wait_for(
            lambda: next((json.loads(x) for x in served.lines if '"event":"first_run"' in x), None), "no first-run line"
        )
        cookie = sign_in(served, first_run["password"], https=True)
        assert cookie.startswith(admin_sessions.SECURE_COOKIE + "=") and "; secure" in cookie.lower()
    finally:
        lines = served.stop()

    assert len(lines) > 10
    for raw in lines:
        doc = json.loads(raw)  # every line, uvicorn's included, is one JSON object
        assert isinstance(doc, dict) and {"ts", "level", "logger", "message"} <= doc.keys(), raw
    loggers = {json.loads(raw)["logger"] for raw in lines}
    assert {"relay", "relay.request", "uvicorn.error"} <= loggers, loggers
    everything = "\n".join(lines)
    assert "Application startup complete." in everything and "Relay listening on" in everything
    assert seeded.key not in everything and seeded.key[12:] not in everything  # only the display prefix
    assert UPSTREAM_SECRET not in everything and "Bearer" not in everything
    assert "a prompt nobody may log" not in everything


def test_text_logs_and_no_trusted_proxy(seeded: SimpleWorld) -> None:
    served = Served(seeded.tmp, {"RELAY_ENV": "development"})  # text is the default in development
    try:
        seeded.fake.enqueue(Reply(text="ok", usage=(4, 2)))
        r = chat(served, seeded.key, headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"})
        assert r.status_code == 200, r.text
        request_id = r.headers["request-id"]
        text = served.wait_for(lambda: next((x for x in served.lines if request_id in x), None), "no request line")
        password = served.wait_for(
            lambda: next((x.split(": ", 1)[1] for x in served.lines if "password (shown once):" in x), None),
            "no first-run password",
        )
        cookie = sign_in(served, password.strip(), https=False)
    finally:
        lines = served.stop()
    # Readable: time, level, logger, the event and key=value pairs; the proxy's claims were not believed.
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO +relay\.request: request request_id=req_", text), text
    assert " status=200 " in text and " model=my-gpt " in text and " client_ip=127.0.0.1" in text
    assert "203.0.113.9" not in text
    assert cookie.startswith(admin_sessions.COOKIE + "=") and "secure" not in cookie.lower()
    assert any("INFO    uvicorn.error: Application startup complete." in x for x in lines)
    assert not any(x.startswith("{") for x in lines)
    assert seeded.key not in "\n".join(lines) and UPSTREAM_SECRET not in "\n".join(lines)


def test_log_format_and_forwarded_allow_ips_settings(tmp_path: Path) -> None:
    sqlite = {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", "RELAY_SECRET_KEY": SECRET}
    postgres = {"RELAY_DATABASE_URL": "postgresql://u@db/relay", "RELAY_SECRET_KEY": SECRET}
    assert Settings.from_env(sqlite).log_format_resolved == "text"  # the embedded default is development
    assert Settings.from_env(postgres).log_format_resolved == "json"
    assert Settings.from_env({**postgres, "RELAY_ENV": "development"}).log_format_resolved == "text"
    assert Settings.from_env({**sqlite, "RELAY_LOG_FORMAT": "JSON"}).log_format_resolved == "json"
    with pytest.raises(SettingsError, match="RELAY_LOG_FORMAT"):
        Settings.from_env({**sqlite, "RELAY_LOG_FORMAT": "yaml"})

    assert Settings.from_env(sqlite).trusted_proxies == ""
    assert Settings.from_env({**sqlite, "RELAY_FORWARDED_ALLOW_IPS": " 10.0.0.0/8 "}).trusted_proxies == "10.0.0.0/8"
    assert Settings.from_env({**sqlite, "RELAY_TRUSTED_PROXIES": "10.1.1.1"}).trusted_proxies == "10.1.1.1"  # alias
    both = {**sqlite, "RELAY_FORWARDED_ALLOW_IPS": "10.2.2.2", "RELAY_TRUSTED_PROXIES": "10.1.1.1"}
    assert Settings.from_env(both).trusted_proxies == "10.2.2.2"
    assert Settings.from_env({**sqlite, "FORWARDED_ALLOW_IPS": "10.3.3.3"}).trusted_proxies == "10.3.3.3"


def test_json_formatter_keeps_tracebacks_and_access_lines_on_one_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        record = logging.getLogger("relay").makeRecord(
            "relay", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    line = formatter.format(record)
    doc = json.loads(line)
    assert "\n" not in line and doc["message"] == "failed here" and doc["level"] == "ERROR"
    assert doc["exc"].startswith("Traceback") and "ZeroDivisionError" in doc["exc"]

    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/x", "1.1", 200),
        None,
    )
    doc = json.loads(formatter.format(access))
    assert (doc["client"], doc["method"], doc["path"], doc["status"]) == ("1.2.3.4:5", "GET", "/x", 200)
    assert doc["message"] == '1.2.3.4:5 - "GET /x HTTP/1.1" 200'


def test_a_json_start_up_failure_is_json_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(RELAY_LOG_FORMAT="json", RELAY_PORT=str(port), RELAY_SECRET_KEY=SECRET)
        r = subprocess.run(
            [sys.executable, "-m", "gateway", "serve"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode != 0
    lines = (r.stdout + r.stderr).splitlines()
    docs = [json.loads(x) for x in lines]  # every line parses
    assert any(d["level"] == "ERROR" and "address already in use" in d["message"] for d in docs), lines
