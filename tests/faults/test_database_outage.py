"""A Postgres outage answered honestly (issue 12, item 4): known keys keep working from the cache past their
TTL, an unknown key gets 503 with retry-after in the door's dialect, and the log has one warning per worker
per outage instead of a traceback per request."""

from __future__ import annotations

import time

import httpx
import pytest
from sites import Site

pytestmark = [pytest.mark.faults]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def test_a_database_outage_serves_known_keys_and_answers_503_to_the_rest(postgres_site: Site) -> None:
    site = postgres_site
    assert site.pg is not None
    stranger = site.seed.key(site.tenant).secret  # a valid key no worker has seen yet
    relay = site.relay(workers=1)
    try:
        http = httpx.Client(base_url=relay.url, timeout=20)
        known = {"authorization": f"Bearer {site.key}"}
        assert http.post("/v1/chat/completions", json=BODY, headers=known).status_code == 200
        assert http.get("/readyz").json()["status"] == "ok"
        site.pg.stop("immediate")
        time.sleep(4.5)  # past the key cache's TTL and grace (3 s + 1 s)
        for _ in range(30):
            assert http.post("/v1/chat/completions", json=BODY, headers=known).status_code == 200
        ready = http.get("/readyz")  # still in the load balancer: it serves what it knows
        assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text

        for path, auth in (("/v1/chat/completions", "authorization"), ("/v1/messages", "x-api-key")):
            value = f"Bearer {stranger}" if auth == "authorization" else stranger
            for _ in range(10):
                resp = http.post(path, json=BODY, headers={auth: value, "anthropic-version": "2023-06-01"})
            assert resp.status_code in (503, 529), (
                resp.text
            )  # the Anthropic door says 529 overloaded, as Anthropic does
            assert resp.headers["retry-after"] == "5"
            error = resp.json()["error"]
            assert "database" in error["message"]
            assert resp.headers["request-id"]
        log = relay.output.decode(errors="replace")
        assert log.count("database unreachable") == 1
        assert "Traceback" not in log
    finally:
        site.pg.start()
    try:
        time.sleep(1)
        resp = httpx.post(
            f"{relay.url}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {stranger}"}
        )
        assert resp.status_code == 200
        assert "database reachable again" in relay.output.decode(errors="replace")
    finally:
        relay.kill()
