"""Budgets that hold through a Redis stall and an upstream that reports ten times the output asked for
(issue 12, items 3 and 5): a $1 budget at $0.02 a request ends within $1 plus one request per worker."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sites import Site

from gateway.db.tables import UsageEvent
from gateway.testing.fake_upstream import Reply

pytestmark = [pytest.mark.faults]
REQUEST_USD = 0.02
WORKERS = 2


def test_a_budget_holds_through_a_redis_stall_and_dishonest_output(postgres_site: Site) -> None:
    site = postgres_site
    assert site.redis is not None
    seed = site.seed
    tenant = seed.tenant()
    upstream = seed.upstream(tenant, base_url=site.fake.url + "/v1")
    # 1,000 output tokens at $20 per million: $0.02 a request, while each asks for 100 (an estimate of $0.002).
    seed.model(tenant, upstream, "dishonest", output_price=20.0, input_price=0.0)
    key = seed.key(tenant)
    seed.limits(key.row.id, budget_usd=1.0, budget_period="total")
    site.fake.set_default(Reply(text="long answer", usage=(10, 1000), delay_s=0.4))
    relay = site.relay(workers=WORKERS)
    load = site.load(relay)
    load.key, load.model, load.clients, load.extra = key.secret, "dishonest", 4, {"max_tokens": 100}
    try:
        load.start()
        time.sleep(2)
        site.redis.pause()
        time.sleep(8)
        site.redis.resume()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and load.statuses.get(402, 0) < 20:
            time.sleep(0.5)
        load.stop()
    finally:
        load.stop()
        site.redis.resume()
        relay.kill()
        site.fake.set_default(Reply(text="ok", chunks=4, usage=(10, 5), delay_s=0.01))
    again = site.relay(workers=1)  # writes whatever the killed workers left in their spools
    try:
        time.sleep(2)
        query = sa.select(sa.func.sum(UsageEvent.cost_micro_usd)).where(UsageEvent.tenant_id == tenant.id)
        spent_usd = int(seed.run(lambda s: s.scalar(query)) or 0) / 1e6
    finally:
        again.kill()
    print(f"budget $1.00, spent ${spent_usd:.2f}; answers {load.statuses}")
    assert load.statuses.get(402, 0) >= 20  # the budget ran out
    assert spent_usd <= 1.0 + WORKERS * REQUEST_USD + 1e-9, f"spent ${spent_usd:.2f} of a $1 budget"
