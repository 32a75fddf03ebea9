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
