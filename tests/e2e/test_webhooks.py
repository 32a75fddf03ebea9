"""Webhook alerts end to end (issue 15, item 4), on both backends: a running gateway with fast poll and sweep
intervals, the fake upstream, and a real HTTP receiver on loopback that checks what it is sent.

Budget thresholds from real spend, each once; a failing receiver retried with backoff; ``key.disabled`` on
revoke and on expiry; subscriptions and the tenant/platform fan-out.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from support import GatewayServer, Seeder

from gateway.db.session import create_engine, create_sessionmaker
from gateway.db.tables import Tenant, WebhookDelivery
from gateway.manage import tenants, webhooks
from gateway.ssrf import Allowlist
from gateway.webhooks.outbox import enqueue
from gateway.webhooks.signing import verify
from gateway.webhooks.sweep import sweep


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


class Receiver:
    """A loopback HTTP server recording every POST; ``fail(path, n)`` makes its next n answers there 500."""

    def __init__(self) -> None:
        self.seen: list[Received] = []
        self.failures: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.seen.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    failing = receiver.failures[self.path] > 0
                    receiver.failures[self.path] -= failing
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, path: str, times: int) -> None:
        with self.lock:
            self.failures[path] = times

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.seen if r.path == path]

    def wait(self, path: str, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(got := self.at(path)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) >= count, f"{path}: {len(got)} of {count} requests arrived"
        return got


@dataclass
class Hooks:
    """A gateway of the module's own (fast webhook loops) beside the receiver, shaped like the shared ``stack``."""

    settings: Any
    gateway: GatewayServer
    seed: Seeder
    receiver: Receiver

    @property
    def url(self) -> str:
        return self.gateway.url

    def add(self, tenant: Any, path: str, events: list[str] | None = None) -> webhooks.NewWebhook:
        allowlist = Allowlist.parse(self.settings.upstream_allowlist)
        return self.seed.run(
            lambda s: webhooks.add_webhook(
                s, box=self.seed.box, tenant=tenant, url=self.receiver.url + path, events=events or [],
                allowlist=allowlist,
            )
        )  # fmt: skip

    def deliveries(self, webhook_id: str) -> list[WebhookDelivery]:
        async def rows(s: Any) -> list[WebhookDelivery]:
            query = sa.select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
            return list(await s.scalars(query.order_by(WebhookDelivery.id)))

        return self.seed.run(rows)

    def run_sweep(self) -> int:
        """One more sweep, as another replica would run it (its own engine, spend from the rollups)."""

        async def go() -> int:
            engine = create_async_engine(self.settings.database_url, poolclass=NullPool)
            sessions = create_sessionmaker(engine)
            try:
                return await sweep(sessions)
            finally:
                await engine.dispose()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def hooks(backend: tuple[str, Any], _fake_upstream: Any) -> Iterator[Hooks]:
    yield from running_hooks(backend, _fake_upstream)


def running_hooks(backend: tuple[str, Any], _fake_upstream: Any) -> Iterator[Hooks]:
    """The body of a module's ``hooks`` fixture: a gateway with fast webhook loops and the receiver."""
    _, settings = backend
    receiver = Receiver()
    receiver.thread.start()
    recv_port = receiver.server.server_address[1]
    fake_port = urlsplit(_fake_upstream.url).port
    # Only the receiver's and the fake's ports are allowed: any other loopback URL shows the refusal.
    allow = f"127.0.0.1:{recv_port},127.0.0.1:{fake_port}"
    fast = replace(settings, webhook_poll_s=0.1, webhook_sweep_s=0.2, upstream_allowlist=allow)
    server = GatewayServer(fast).start()
    yield Hooks(settings=server.settings, gateway=server, seed=Seeder(server.settings), receiver=receiver)
    server.stop()
    receiver.server.shutdown()


def priced_key(hooks: Hooks, fake: Any, tenant: Any) -> tuple[str, str]:
    up = hooks.seed.upstream(tenant, base_url=fake.url + "/v1")
    hooks.seed.model(tenant, up, "hook-gpt", input_price=1000.0, output_price=2000.0)
    new = hooks.seed.key(tenant)
    return new.secret, new.row.id


def chat(hooks: Hooks, secret: str) -> httpx.Response:
    body = {"model": "hook-gpt", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(hooks.url + "/v1/chat/completions", headers={"authorization": f"Bearer {secret}"}, json=body)


def signed(received: Received, secret: str) -> bool:
    return verify(secret, received.headers["relay-signature"], received.body, now=int(time.time()))


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_budget_thresholds_arrive_signed_and_once(hooks, fake):
    tenant = hooks.seed.tenant()
    secret, key_id = priced_key(hooks, fake, tenant)
    path = f"/budget/{tenant.id}"
    hook = hooks.add(tenant, path)
    assert chat(hooks, secret).status_code == 200
    cost = hooks.seed.usage_rows(tenant, expect=1)[0].cost_micro_usd
    assert cost > 0
    hooks.seed.limits(key_id, budget_usd=cost / 0.9 / 1e6, budget_period="month")  # spent: 90 %

    first = hooks.receiver.wait(path, 1)[0]
    assert signed(first, hook.secret) and not signed(first, "whsec_wrong")
    assert first.headers["content-type"] == "application/json" and first.headers["user-agent"] == "Relay-Webhooks"
    assert first.headers["relay-event"] == "budget.threshold"
    doc = first.doc
    assert doc["type"] == "budget.threshold" and doc["tenant_id"] == tenant.id and doc["id"].startswith("evt_")
    data = doc["data"]
    assert (data["scope"], data["id"], data["threshold"], data["period"]) == ("key", key_id, 80, "month")
    assert data["spent_usd"] == pytest.approx(cost / 1e6) and data["budget_usd"] == pytest.approx(
        cost / 0.9 / 1e6, abs=1e-6
    )
    assert data["period_start"] == datetime.now(UTC).strftime("%Y-%m-01T00:00:00+00:00")

    assert chat(hooks, secret).status_code == 200  # now past 100 %
    second = hooks.receiver.wait(path, 2)[1]
    assert second.doc["data"]["threshold"] == 100 and signed(second, hook.secret)
    # Later sweeps (this gateway's, every 0.2 s, and another replica's) queue nothing new.
    time.sleep(0.6)
    assert hooks.run_sweep() == 0
    rows = hooks.deliveries(hook.row.id)
    assert [r.event for r in rows] == ["budget.threshold"] * 2 and all(r.delivered_at for r in rows)
    assert len(hooks.receiver.at(path)) == 2


def test_tenant_budget_reaches_the_tenant_and_the_platform(hooks, fake):
    tenant = hooks.seed.tenant()
    secret, _ = priced_key(hooks, fake, tenant)
    mine, platform_path = f"/tb/{tenant.id}", f"/platform/{tenant.id}"
    hooks.add(tenant, mine, ["budget.threshold"])
    platform = hooks.add(None, platform_path, ["budget.threshold"])
    try:
        assert chat(hooks, secret).status_code == 200
        cost = hooks.seed.usage_rows(tenant, expect=1)[0].cost_micro_usd
        hooks.seed.tenant_budget(tenant, cost / 1e6, "total")  # spent: 100 %
        got = {r.doc["data"]["threshold"] for r in hooks.receiver.wait(mine, 2)}
        assert got == {80, 100}

        # The platform's webhook gets this tenant's events too (and, being new, those of budgets crossed earlier).
        def theirs() -> list[dict[str, Any]]:
            docs = [r.doc for r in hooks.receiver.at(platform_path)]
            return [d for d in docs if d["tenant_id"] == tenant.id and d["data"]["scope"] == "tenant"]

        eventually(lambda: len(theirs()) == 2)
        assert {d["data"]["threshold"] for d in theirs()} == {80, 100}
        assert all(d["data"]["period_start"] is None and d["data"]["id"] == tenant.id for d in theirs())
    finally:
        hooks.seed.run(lambda s: webhooks.remove_webhook(s, platform.row))


def test_a_failing_receiver_is_retried_with_backoff_then_succeeds(hooks):
    tenant = hooks.seed.tenant()
    path = f"/retry/{tenant.id}"
    hook = hooks.add(tenant, path)
    hooks.receiver.fail(path, 1)
    data = {"upstream_id": "up1", "name": "deepseek"}
    queued = hooks.seed.run(
        lambda s: enqueue(s, event="upstream.circuit_open", tenant_id=tenant.id, data=data, dedupe="circuit:up1:1")
    )
    assert queued == 1
    hooks.receiver.wait(path, 1)
    eventually(lambda: hooks.deliveries(hook.row.id)[0].attempts == 1)
    row = hooks.deliveries(hook.row.id)[0]
    assert row.last_error == "HTTP 500" and row.delivered_at is None and row.failed_at is None
    wait_s = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 8 < wait_s <= 10  # the first backoff step
    # The same event again (a retried transaction): nothing new is queued.
    assert (
        hooks.seed.run(
            lambda s: enqueue(s, event="upstream.circuit_open", tenant_id=tenant.id, data=data, dedupe="circuit:up1:1")
        )
        == 0
    )

    async def due_now(s: Any) -> None:  # ten seconds pass
        await s.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id == row.id).values(
            next_attempt_at=datetime.now(UTC)))  # fmt: skip

    hooks.seed.run(due_now)
    first, second = hooks.receiver.wait(path, 2)
    assert first.body == second.body and signed(second, hook.secret)  # one event id: receivers dedupe on it
    eventually(lambda: hooks.deliveries(hook.row.id)[0].delivered_at is not None)
    done = hooks.deliveries(hook.row.id)[0]
    assert done.attempts == 2 and done.last_error is None


def test_key_disabled_on_revoke_and_on_expiry_to_subscribers_only(hooks):
    tenant, other = hooks.seed.tenant(), hooks.seed.tenant()
    wanted, unwanted, elsewhere = f"/kd/{tenant.id}", f"/budget-only/{tenant.id}", f"/other/{other.id}"
    hooks.add(tenant, wanted, ["key.disabled"])
    skipped = hooks.add(tenant, unwanted, ["budget.threshold"])
    foreign = hooks.add(other, elsewhere)
    key = hooks.seed.key(tenant, name="ci")
    hooks.seed.revoke(key.row.id)
    doc = hooks.receiver.wait(wanted, 1)[0].doc
    assert doc["type"] == "key.disabled" and doc["tenant_id"] == tenant.id
    assert doc["data"]["key_id"] == key.row.id and doc["data"]["reason"] == "revoked"
    assert doc["data"]["prefix"] == key.row.prefix and doc["data"]["name"] == "ci"
    hooks.seed.revoke(key.row.id)  # already revoked: no second event

    expired = hooks.seed.key(tenant, expires_at=datetime.now(UTC) - timedelta(minutes=5))
    later = hooks.receiver.wait(wanted, 2)[1].doc
    assert later["data"]["key_id"] == expired.row.id and later["data"]["reason"] == "expired"
    assert hooks.run_sweep() == 0
    time.sleep(0.5)
    assert len(hooks.receiver.at(wanted)) == 2
    assert hooks.deliveries(skipped.row.id) == [] and hooks.deliveries(foreign.row.id) == []
    assert hooks.receiver.at(unwanted) == [] and hooks.receiver.at(elsewhere) == []


def test_deleting_a_tenant_deletes_its_webhooks_and_their_deliveries(hooks):
    tenant = hooks.seed.tenant()
    hook = hooks.add(tenant, f"/gone/{tenant.id}")
    hooks.seed.run(lambda s: enqueue(s, event="key.disabled", tenant_id=tenant.id, data={}, dedupe="gone"))

    async def drop() -> None:  # through the gateway's own engine, as `relay tenants delete` does
        engine = create_engine(hooks.settings.database_url, pool_size=1)
        try:
            async with create_sessionmaker(engine).begin() as s:
                await tenants.delete_tenant(s, await s.get(Tenant, tenant.id), force=True)
        finally:
            await engine.dispose()

    asyncio.run(drop())
    assert hooks.seed.run(lambda s: webhooks.list_webhooks(s, tenant_id=tenant.id)) == []
    assert hooks.deliveries(hook.row.id) == []
