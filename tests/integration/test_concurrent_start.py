"""Replicas starting at once on a fresh database: migrations and the first-run bootstrap are serialised by
the schema lock, and ``relay serve`` on Postgres refuses a schema it would fail on, saying what to run.

Real ``relay`` processes on loopback ports, on a scratch Postgres database per test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from support import (
    REDIS_URL,
    SECRET,
    base_settings,
    free_port,
    scratch_postgres,
)

from gateway.cli.serve import FIRST_TENANT, STARTUP_FAILURE, _bootstrap
from gateway.db.session import alembic_config, create_engine, migrate
from gateway.settings import normalise_database_url

RELAY = [sys.executable, "-m", "gateway"]
FIRST_RUN = ("password (shown once):", '"event":"first_run"')  # the text and the JSON log formats


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()
    assert head
    return head


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_postgres() as url:
        yield url


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return {
        **env,
        "RELAY_DATABASE_URL": database_url,
        "RELAY_REDIS_URL": REDIS_URL,
        "RELAY_SECRET_KEY": SECRET,
        "RELAY_WORKERS": "1",
    }


def _scalars(url: str, query: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_engine(normalise_database_url(url), pool_size=1)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(sa.text(query))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _migrate_at_once(url: str, cwd: Path, n: int) -> None:
    procs = [
        subprocess.Popen(
            [*RELAY, "migrate"], cwd=cwd, env=_env(url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
        assert "database is at the newest revision" in out


@pytest.mark.postgres
def test_migrate_twice_at_once_then_two_replicas_start_at_once(pg_url: str, tmp_path: Path) -> None:
    _migrate_at_once(pg_url, tmp_path, 2)
    assert _scalars(pg_url, "SELECT version_num FROM alembic_version") == [_head()]

    ports = [free_port(), free_port()]
    procs = []
    for i, port in enumerate(ports):
        cwd = tmp_path / f"replica{i}"  # each replica its own spool directory, as pods have
        cwd.mkdir()
        procs.append(
            subprocess.Popen(
                [*RELAY, "serve", "--port", str(port)],
                cwd=cwd,
                env=_env(pg_url),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        deadline = time.monotonic() + 60
        up: set[int] = set()
        while len(up) < len(ports):
            for proc, port in zip(procs, ports, strict=True):
                assert proc.poll() is None, f"a replica exited with {proc.returncode}: {proc.communicate()[0]}"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        up.add(port)
                except httpx.TransportError:
                    pass
            assert time.monotonic() < deadline, "the replicas did not both come up"
            time.sleep(0.2)
    finally:
        outs = []
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                outs.append(proc.communicate(timeout=30)[0])
            except subprocess.TimeoutExpired:
                proc.kill()
                outs.append(proc.communicate()[0])
    assert sum(out.count(marker) for out in outs for marker in FIRST_RUN) == 1, outs  # one made the admin
    assert not any("IntegrityError" in out for out in outs), outs
    assert _scalars(pg_url, "SELECT name FROM tenants") == [FIRST_TENANT]
    assert _scalars(pg_url, "SELECT count(*) FROM users") == [1]


@pytest.mark.postgres
def test_bootstraps_racing_in_one_transaction_each_make_one_admin(pg_url: str) -> None:
    """Four bootstraps interleaved on one event loop: without the lock, all read "no users" and all insert."""
    settings = base_settings(pg_url, REDIS_URL)
    migrate(settings.database_url)

    async def race() -> list[str | None]:
        return list(await asyncio.gather(*(_bootstrap(settings) for _ in range(4))))

    passwords = asyncio.run(race())
    assert len([p for p in passwords if p]) == 1, passwords
    assert _scalars(pg_url, "SELECT count(*) FROM users") == [1]


def _serve_once(pg_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``relay serve`` on ``pg_url``, expected to refuse to start: its exit status and output."""
    return subprocess.run(
        [*RELAY, "serve", "--port", str(free_port())],
        cwd=cwd,
        env=_env(pg_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.postgres
def test_serve_on_an_unmigrated_database_says_to_run_relay_migrate(pg_url: str, tmp_path: Path) -> None:
    r = _serve_once(pg_url, tmp_path)
    assert r.returncode == STARTUP_FAILURE  # 3, as the README says
    assert f"the database schema is at base (no Relay tables yet), this Relay needs {_head()}" in r.stderr
    assert "run `relay migrate`" in r.stderr
    assert "Traceback" not in r.stderr and "Relay listening" not in r.stdout
    assert _scalars(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [0]  # nothing made


@pytest.mark.postgres
def test_serve_on_a_database_one_migration_behind_names_both_revisions(pg_url: str, tmp_path: Path) -> None:
    from alembic import command

    url = normalise_database_url(pg_url)
    command.upgrade(alembic_config(url), "head")
    command.downgrade(alembic_config(url), "-1")
    [at] = _scalars(pg_url, "SELECT version_num FROM alembic_version")
    r = _serve_once(pg_url, tmp_path)
    assert r.returncode == STARTUP_FAILURE  # 3, as the README says
    assert f"the database schema is at {at}, this Relay needs {_head()}: run `relay migrate`" in r.stderr


def test_sqlite_migrations_at_once_share_the_file_lock(tmp_path: Path) -> None:
    db = tmp_path / "relay.db"
    _migrate_at_once(f"sqlite:///{db}", tmp_path, 3)
    assert (tmp_path / "relay.db.migrate.lock").exists()
    assert _scalars(f"sqlite:///{db}", "SELECT version_num FROM alembic_version") == [_head()]
