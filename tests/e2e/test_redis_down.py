"""Redis stopped mid-test: the gateway keeps serving, every request is in the ledger, counters catch up."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
import redis
from support import REQUIRE_SERVICES, GatewayServer, Seeder, free_port

from gateway.testing.fake_upstream import Reply

pytestmark = pytest.mark.redis


class OwnRedis:
    """A redis-server of this test's own on a free port, so stopping it disturbs nobody."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        if REQUIRE_SERVICES:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    r = OwnRedis()
    r.start()
    yield r
    r.stop()


def test_serving_through_a_redis_outage(pg_settings, own_redis, fake):
    server = GatewayServer(replace(pg_settings, redis_url=own_redis.url)).start()
    try:
        seed = Seeder(server.settings)
        tenant = seed.tenant()
        seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1"), "steady")
        new = seed.key(tenant)
        seed.limits(new.row.id, rpm=1000)  # limits on: they must fall back, not fail
        fake.set_default(Reply(text="ok", usage=(7, 3)))
        headers = {"authorization": f"Bearer {new.secret}"}
        body = {"model": "steady", "messages": [{"role": "user", "content": "hi"}]}

        def burst(n: int) -> list[int]:
            return [
                httpx.post(server.url + "/v1/chat/completions", headers=headers, json=body, timeout=10).status_code
                for _ in range(n)
            ]

        assert burst(5) == [200] * 5
        own_redis.stop()
        started = time.monotonic()
        assert burst(10) == [200] * 10  # Redis is gone: still serving, with per-process limits
        assert time.monotonic() - started < 10
        rows = seed.usage_rows(tenant, expect=15)
        assert len(rows) == 15 and sum(r.output_tokens for r in rows) == 45  # nothing served went unbilled

        own_redis.start()  # empty: as after a restart with data loss
        assert burst(5) == [200] * 5
        day = datetime.now(UTC).strftime("%Y%m%d")
        client = redis.Redis(port=own_redis.port)
        deadline = time.monotonic() + 10
        counted = 0
        while time.monotonic() < deadline:
            counted = int(client.hget(f"relay:usage:key:{new.row.id}:{day}", "requests") or 0)
            if counted >= 15:
                break
            time.sleep(0.2)
        # The outage's 10 requests were owed and written when Redis came back, plus the 5 after it (and any of
        # the first 5 whose counts had not left the gateway when the old Redis died).
        time.sleep(0.5)
        counted = int(client.hget(f"relay:usage:key:{new.row.id}:{day}", "requests") or 0)
        assert 15 <= counted <= 20
        assert len(seed.usage_rows(tenant, expect=20)) == 20
    finally:
        server.stop()


def test_fail_closed_refuses_while_redis_is_down(pg_settings, own_redis, fake):
    server = GatewayServer(replace(pg_settings, redis_url=own_redis.url, metering_fail_closed=True)).start()
    try:
        seed = Seeder(server.settings)
        tenant = seed.tenant()
        seed.model(tenant, seed.upstream(tenant, base_url=fake.url + "/v1"), "strict")
        new = seed.key(tenant)
        seed.limits(new.row.id, budget_usd=100.0)
        own_redis.stop()
        r = httpx.post(
            server.url + "/v1/messages",
            headers={"x-api-key": new.secret},
            json={"model": "strict", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    finally:
        server.stop()
