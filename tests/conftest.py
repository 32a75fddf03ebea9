"""Fixtures shared by every test: the two storage backends, the gateway on each, the fake upstream."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import (
    REDIS_URL,
    GatewayServer,
    Seeder,
    base_settings,
    check_redis,
    create_postgres_database,
    drop_postgres_database,
    prepare_database,
    service_missing,
)

from gateway.settings import Settings
from gateway.testing.fake_upstream import FakeUpstream


@dataclass
class Stack:
    """One backend (SQLite + in-process meter, or Postgres + Redis) with a running gateway on it."""

    name: str
    settings: Settings
    gateway: GatewayServer
    seed: Seeder

    @property
    def url(self) -> str:
        return self.gateway.url


def _backend_settings(name: str, tmp: Path) -> tuple[Settings, str | None]:
    if name == "sqlite":
        return base_settings(f"sqlite:///{tmp / 'relay.db'}", None), None
    try:
        db_url = create_postgres_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    try:
        check_redis()
    except Exception as exc:
        drop_postgres_database(db_url)
        service_missing("Redis", exc)
    return replace(base_settings(db_url, REDIS_URL), spool_dir=str(tmp / "relay-spool")), db_url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """Settings of a migrated database of each kind (and Redis for the Postgres kind)."""
    settings, pg_url = _backend_settings(request.param, tmp_path_factory.mktemp(request.param))
    prepare_database(settings)
    yield request.param, settings
    if pg_url:
        drop_postgres_database(pg_url)


@pytest.fixture(scope="session")
def stack(backend: tuple[str, Settings]) -> Iterator[Stack]:
    name, settings = backend
    server = GatewayServer(settings).start()
    yield Stack(name=name, settings=server.settings, gateway=server, seed=Seeder(settings))
    server.stop()


@pytest.fixture(scope="session")
def _fake_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(_fake_upstream: FakeUpstream) -> FakeUpstream:
    """The scriptable upstream, with an empty queue and no recorded requests."""
    _fake_upstream.reset()
    return _fake_upstream
