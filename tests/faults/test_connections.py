"""Connections that misbehave, and the drain (issue 12, items 6-7), against ``relay serve`` itself."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import pytest
from sites import Site

from gateway.testing.fake_upstream import Reply

pytestmark = [pytest.mark.faults]


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
        return True, got
    except (TimeoutError, ConnectionResetError):
        return False, got


def _refused_within(port: int, seconds: float) -> bool:
    """Whether a new connection to ``port`` is refused within ``seconds`` (tried every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except ConnectionRefusedError:
            return True
        except TimeoutError:
            pass
        time.sleep(0.05)
    return False


def test_slow_headers_and_a_body_that_never_comes_are_cut_off(sqlite_site: Site) -> None:
    relay = sqlite_site.relay(workers=1)
    try:
        half_headers = socket.create_connection(("127.0.0.1", relay.port))
        half_headers.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: relay\r\n")  # and never the rest
        short_body = socket.create_connection(("127.0.0.1", relay.port))
        short_body.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: relay\r\ncontent-type: application/json\r\n"
            b"x-api-key: " + sqlite_site.key.encode() + b"\r\ncontent-length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        closed, _ = _closed_within(half_headers, 25)
        assert closed and 14 <= time.monotonic() - started < 20  # the 15 s header deadline, not "never"
        closed, answer = _closed_within(short_body, 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"type":"error"' in answer  # in the door's dialect
        assert time.monotonic() - started < 20  # 15 s + 1,000 bytes at 64 KiB/s, not the 65 s it was
    finally:
        relay.kill()


def test_sigterm_refuses_new_connections_and_ends_open_streams_with_an_error_event(sqlite_site: Site) -> None:
    site = sqlite_site
    relay = site.relay(workers=2)
    drip = Reply(text="drip " * 200, chunks=200, chunk_delay_s=0.2)  # a 40 s stream
    events: list[bytes] = []

    def stream() -> None:
        with httpx.stream(
            "POST",
            f"{relay.url}/v1/messages",
            json={"model": "m", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": site.key, "anthropic-version": "2023-06-01"},
            timeout=60,
        ) as resp:
            for chunk in resp.iter_bytes():
                events.append(chunk)

    site.fake.enqueue(drip)
    try:
        reader = threading.Thread(target=stream)
        reader.start()
        time.sleep(1.5)  # the stream is flowing
        assert events
        assert relay.proc is not None
        sigterm_at = time.monotonic()
        relay.proc.send_signal(signal.SIGTERM)
        assert _refused_within(relay.port, 1.5)  # refused at once, not left hanging in the backlog
        reader.join(timeout=30)
        ended_after = time.monotonic() - sigterm_at
        body = b"".join(events)
        assert b"event: error" in body and b"overloaded_error" in body, body[-400:]
        assert ended_after < 4  # before the 4 s grace ran out (1 s margin), not cut by a cancel
        relay.proc.wait(timeout=30)
    finally:
        relay.kill()
    again = site.relay(workers=1)
    try:
        rows = [r for r in site.seed.usage_rows(site.tenant, expect=1) if r.error_code == "gateway_draining"]
        assert rows and rows[-1].status == 503 and rows[-1].output_tokens > 0  # metered, with what was streamed
    finally:
        again.kill()
