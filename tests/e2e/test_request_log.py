"""One structured log line per request, with tokens, cost and conversion notes, and never a secret."""

from __future__ import annotations

import json
import logging
import time

import httpx

from gateway.testing.fake_upstream import Reply


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_request_line_has_usage_and_notes_and_no_secret(world):
    handler = Collect()
    logger = logging.getLogger("relay")
    logger.addHandler(handler)
    try:
        world.fake.enqueue(Reply(text="ok", usage=(12, 3)))
        r = httpx.post(
            world.url + "/v1/messages",
            headers={"x-api-key": world.key},
            json={
                "model": "my-gpt",
                "max_tokens": 50,
                "top_k": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 5
        while not any(r.headers["request-id"] in line for line in handler.lines) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        logger.removeHandler(handler)
    line = next(line for line in handler.lines if r.headers["request-id"] in line)
    doc = json.loads(line)
    assert doc["model"] == "my-gpt" and doc["door"] == "anthropic" and doc["upstream_dialect"] == "openai"
    assert (doc["input_tokens"], doc["output_tokens"], doc["status"]) == (12, 3, 200)
    assert doc["cost_micro_usd"] == 12 * 1 + 3 * 2
    assert "top_k_dropped" in doc["conversion_notes"]
    assert "top_k_dropped" in r.headers["relay-conversion-notes"]
    everything = "\n".join(handler.lines)
    assert world.key not in everything and "up-secret-openai" not in everything
    assert world.key[:10] in line  # the display prefix identifies the key


def _logged_line(handler: Collect, request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while not any(request_id in line for line in handler.lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    return json.loads(next(line for line in handler.lines if request_id in line))


def test_a_clients_x_request_id_is_correlated_but_never_becomes_the_ledger_id(world):
    handler = Collect()
    logger = logging.getLogger("relay")
    logger.addHandler(handler)
    try:
        ids = []
        for _ in range(2):  # the same client id twice: both calls are billed, each under its own id
            world.fake.enqueue(Reply(text="ok", usage=(5, 1)))
            r = httpx.post(
                world.url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {world.key}", "x-request-id": "trace-42.abc"},
                json={"model": "my-gpt", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-client-request-id"] == "trace-42.abc"
            assert r.headers["x-request-id"] == r.headers["request-id"] != "trace-42.abc"
            ids.append(r.headers["request-id"])
            assert world.fake.requests[-1].headers["x-request-id"] == "trace-42.abc"  # the trace continues upstream
            assert _logged_line(handler, ids[-1])["client_request_id"] == "trace-42.abc"
        assert ids[0] != ids[1]

        # An id that is not a sane token (header injection, 4 kB of junk) is neither echoed nor forwarded.
        world.fake.enqueue(Reply(text="ok", usage=(5, 1)))
        r = httpx.post(
            world.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {world.key}", "x-request-id": "x" * 129},
            json={"model": "my-gpt", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200 and "x-client-request-id" not in r.headers
        assert "x-request-id" not in world.fake.requests[-1].headers
        assert "client_request_id" not in _logged_line(handler, r.headers["request-id"])

        # Errors carry it too, in the door's dialect.
        r = httpx.post(
            world.url + "/v1/messages",
            headers={"x-api-key": world.key, "x-request-id": "trace-43"},
            json={"model": "no-such-model", "max_tokens": 5, "messages": []},
        )
        assert r.status_code == 404 and r.json()["type"] == "error"
        assert r.headers["x-client-request-id"] == "trace-43"
    finally:
        logger.removeHandler(handler)
