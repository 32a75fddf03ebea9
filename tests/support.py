"""Test harness: real services, a real gateway on loopback, and a seeder that goes through our services.

``RELAY_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns "Postgres/Redis not reachable"
from a skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.app import create_app
from gateway.cli.uvicorn_guard import proxy_options
from gateway.db.session import migrate
from gateway.db.tables import UsageEvent
from gateway.manage import keys, limits, tenants, upstreams
from gateway.security import SecretBox, derive_key
from gateway.settings import Settings, normalise_database_url
from gateway.ssrf import Allowlist

T = TypeVar("T")
POSTGRES_URL = os.environ.get("RELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("RELAY_TEST_REQUIRE_SERVICES", "") not in ("", "0", "false")
SECRET = "test-secret-key-" + "x" * 32


def service_missing(what: str, exc: BaseException) -> None:
    message = f"{what} not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and RELAY_TEST_REQUIRE_SERVICES is set", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_postgres_database() -> str:
    """A fresh database for this test session (parallel runs never share tables)."""
    import asyncpg

    name = f"relay_t_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    parts = urlsplit(POSTGRES_URL)
    return parts._replace(path="/" + name).geturl()


def drop_postgres_database(url: str) -> None:
    import asyncpg

    name = urlsplit(url).path.lstrip("/")

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@contextlib.contextmanager
def scratch_postgres(*, with_redis: bool = True) -> Iterator[str]:
    """A fresh Postgres database (its URL), dropped afterwards; ``with_redis``: the shared Redis must answer too.
    A service that does not answer skips the test (fails it under ``RELAY_TEST_REQUIRE_SERVICES``)."""
    try:
        url = create_postgres_database()
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    try:
        if with_redis:
            try:
                check_redis()
            except Exception as exc:
                service_missing("Redis", exc)
        yield url
    finally:
        drop_postgres_database(url)


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


class GatewayServer:
    """The real gateway (uvicorn + our app) in a background thread on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = replace(settings, port=free_port())
        self.app = create_app(self.settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.settings.port,
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            http="h11",
            **proxy_options(self.settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}{self.settings.root_path}"

    def start(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    @property
    def services(self) -> Any:
        return self.app.state.services


class Seeder:
    """Creates tenants, upstreams, models and keys through ``gateway.manage``, like the CLI does."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.box = SecretBox(derive_key(settings.secret_key, "upstream-secrets"))

    def run(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def go() -> T:
            engine = create_async_engine(self.settings.database_url, poolclass=NullPool)
            try:
                async with async_sessionmaker(engine, expire_on_commit=False).begin() as session:
                    return await fn(session)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def tenant(self, name: str | None = None) -> Any:
        return self.run(lambda s: tenants.create_tenant(s, name or f"t-{secrets.token_hex(4)}"))

    def upstream(
        self,
        tenant: Any,
        *,
        base_url: str,
        dialect: str = "openai",
        api_key: str | None = "up-secret-key",
        name: str | None = None,
        **kw: Any,
    ) -> Any:
        kw.setdefault("allowlist", Allowlist.parse(self.settings.upstream_allowlist))
        return self.run(
            lambda s: upstreams.add_upstream(
                s,
                box=self.box,
                tenant=tenant,
                name=name or f"up-{secrets.token_hex(3)}",
                dialect=dialect,
                base_url=base_url,
                api_key=api_key,
                **kw,
            )
        )

    def model(self, tenant: Any, upstream: Any, name: str, upstream_model: str = "upstream-model", **kw: Any) -> Any:
        async def add(s: AsyncSession) -> Any:
            up = await upstreams.get_upstream(s, upstream.name, tenant=tenant)
            return await upstreams.add_model(
                s, tenant=tenant, name=name, upstream=up, upstream_model=upstream_model, **kw
            )

        return self.run(add)

    def key(
        self, tenant: Any, *, allow_custom_models: bool = True, expires_at: datetime | None = None, **kw: Any
    ) -> keys.NewKey:
        return self.run(
            lambda s: keys.create_key(
                s,
                tenant=tenant,
                secret_key=self.settings.secret_key,
                allow_custom_models=allow_custom_models,
                expires_at=expires_at,
                **kw,
            )
        )

    def limits(self, key_id: str, **changes: Any) -> None:
        """Set a key's limits (rpm, tpm, concurrency, budget_usd, budget_period) like `relay keys update`."""

        async def apply(s: AsyncSession) -> None:
            await limits.set_key_limits(s, await keys.find_key(s, key_id), **changes)

        self.run(apply)

    def tenant_budget(self, tenant: Any, budget_usd: float | None, period: str = "total") -> None:
        async def apply(s: AsyncSession) -> None:
            row = await tenants.get_tenant(s, tenant.name)
            await limits.set_tenant_budget(s, row, budget_usd=budget_usd, budget_period=period)

        self.run(apply)

    def revoke(self, key_id: str) -> None:
        self.run(lambda s: keys.revoke_key(s, key_id))

    def usage_rows(self, tenant: Any, *, expect: int, timeout_s: float = 10.0) -> list[UsageEvent]:
        """The tenant's ledger rows, waiting until ``expect`` of them were written (off the response path)."""
        query = sa.select(UsageEvent).where(UsageEvent.tenant_id == tenant.id).order_by(UsageEvent.id)
        deadline = time.monotonic() + timeout_s
        while True:
            rows: list[UsageEvent] = self.run(lambda s: _all(s, query))
            if len(rows) >= expect or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


async def _all(session: AsyncSession, query: Any) -> list[Any]:
    return list(await session.scalars(query))


def base_settings(database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        database_url=normalise_database_url(database_url),
        redis_url=redis_url,
        secret_key=SECRET,
        development=True,
        route_cache_ttl_s=0.0,
        upstream_retries=0,  # most tests script one upstream answer per request; test_retries turns them on
        upstream_allowlist="127.0.0.1",  # the fake upstream lives on loopback
        trusted_proxies="127.0.0.1",  # tests play the TLS proxy in front (X-Forwarded-Proto)
        connect_timeout_s=2.0,
        first_byte_timeout_s=5.0,
        idle_timeout_s=5.0,
        total_timeout_s=30.0,
        gc_tuning=False,  # process-wide; one test checks it (test_gateway_settings)
    )


def prepare_database(settings: Settings) -> None:
    migrate(settings.database_url)


REPO = Path(__file__).resolve().parents[1]


def npm_cli(package: str, version: str, command: str, cache: str) -> Path:
    """The ``command`` of npm ``package@version``, installed into ``.cache/<cache>`` on first use.

    A cached copy of another version is replaced. Without npm the test is skipped (failed under
    ``RELAY_TEST_REQUIRE_SERVICES``).
    """
    prefix = REPO / ".cache" / cache
    binary = prefix / "node_modules" / ".bin" / command
    manifest = prefix / "node_modules" / package / "package.json"
    try:
        installed = json.loads(manifest.read_text()).get("version")
    except (OSError, ValueError):
        installed = None
    if binary.exists() and installed == version:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        message = f"npm not installed: cannot install {package}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    prefix.mkdir(parents=True, exist_ok=True)
    args = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"{package}@{version}"]
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    return binary


def relay_chunks(tap: Any, chunks: list[bytes], *, lane: bool) -> tuple[bytes, int]:
    """The relay's stream loop (``gateway.relay._relay_stream``) over these network chunks, with or without the
    tap's fast lane (``pass_raw``); returns the client's bytes and how many events the lane took."""
    from gateway.protocols.sse import SSEDecoder
    from gateway.stream_reading import encode_all, take_chunk

    decoder, out, hits = SSEDecoder(), [], 0

    def counted(chunk: bytes) -> tuple[bytes, bytes]:
        nonlocal hits
        passed, rest = tap.pass_raw(chunk)
        hits += passed.count(b"\n\n")
        return passed, rest

    for chunk in chunks:
        out.append(take_chunk(chunk, decoder, tap, counted if lane else None)[0])
        if tap.finished:  # the relay stops reading here
            break
    else:
        out.append(encode_all([e for ev in decoder.finish() for e in tap.feed(ev)] + tap.finish()))
    return b"".join(out), hits
