"""The fault suite's sites: private Postgres, Redis and a fake upstream, seeded once per package."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from services import Load, PostgresCluster, RedisServer, Relay
from support import SECRET, Seeder, base_settings, free_port, prepare_database

from gateway.db.tables import UsageEvent
from gateway.testing.fake_upstream import FakeUpstream, Reply


@dataclass
class Site:
    """A migrated, seeded database (and Redis, on Postgres) with a fake upstream behind one model."""

    name: str
    env: dict[str, str]
    seed: Seeder
    tenant: Any
    key: str
    fake: FakeUpstream
    spool: Path
    pg: PostgresCluster | None = None
    redis: RedisServer | None = None
    port: int = field(default_factory=free_port)
    """One port for every Relay started on this site, so clients carry on across restarts."""

    def relay(self, workers: int = 2) -> Relay:
        return Relay({**self.env, "RELAY_SPOOL_DIR": str(self.spool)}, workers, self.port).start()

    def load(self, relay: Relay) -> Load:
        return Load(relay.url, self.key, "m")

    def rows(self) -> set[str]:
        query = sa.select(UsageEvent.request_id).where(UsageEvent.tenant_id == self.tenant.id, UsageEvent.status == 200)
        return set(self.seed.run(lambda s: _scalars(s, query)))

    def completions(self) -> int:
        return sum(1 for r in self.fake.requests if r.path.endswith("/chat/completions"))

    def assert_no_row_lost(self, answered: set[str], timeout_s: float = 60.0) -> set[str]:
        assert len(answered) > 20, "the load did not get going"
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.rows()
            if answered <= rows or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        missing = answered - rows
        assert not missing, f"{len(missing)} of {len(answered)} answered requests have no usage row"
        assert len(rows) <= self.completions()  # no row without an upstream answer behind it
        return rows


async def _scalars(session: Any, query: Any) -> list[Any]:
    return list(await session.scalars(query))


def _seed(database_url: str, redis_url: str | None, fake: FakeUpstream) -> Any:
    settings = base_settings(database_url, redis_url)
    prepare_database(settings)
    seed = Seeder(settings)
    tenant = seed.tenant()
    upstream = seed.upstream(tenant, base_url=fake.url + "/v1")
    seed.model(tenant, upstream, "m")
    return seed, tenant, seed.key(tenant).secret


@pytest.fixture(scope="package")
def fault_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    upstream.set_default(Reply(text="ok", chunks=4, usage=(10, 5), delay_s=0.01))
    yield upstream
    upstream.stop()


def _env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {
        "RELAY_DATABASE_URL": database_url,
        "RELAY_SECRET_KEY": SECRET,
        "RELAY_UPSTREAM_ALLOWLIST": "127.0.0.1",
        "RELAY_UPSTREAM_RETRIES": "0",
        "RELAY_SHUTDOWN_GRACE": "2",
    }
    if redis_url:
        env["RELAY_REDIS_URL"] = redis_url
    return env


@pytest.fixture(scope="package")
def postgres_site(tmp_path_factory: pytest.TempPathFactory, fault_upstream: FakeUpstream) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("faults-pg")
    pg = PostgresCluster()
    pg.start()
    redis = RedisServer()
    redis.start()
    try:
        env = _env(pg.url, redis.url)
        seed, tenant, key = _seed(pg.url, redis.url, fault_upstream)
        yield Site("postgres", env, seed, tenant, key, fault_upstream, root / "spool", pg=pg, redis=redis)
    finally:
        redis.kill()
        pg.destroy()


@pytest.fixture(scope="package")
def sqlite_site(tmp_path_factory: pytest.TempPathFactory, fault_upstream: FakeUpstream) -> Site:
    root = tmp_path_factory.mktemp("faults-sqlite")
    url = f"sqlite:///{root / 'relay.db'}"
    env = _env(url, None)
    seed, tenant, key = _seed(url, None, fault_upstream)
    return Site("sqlite", env, seed, tenant, key, fault_upstream, root / "spool")
