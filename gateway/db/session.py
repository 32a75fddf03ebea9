"""Engine and session factories, and schema migration through Alembic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

CONNECT_TIMEOUT_S = 10.0
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # pre-ping replaces connections a Postgres restart killed; recycle bounds their age. A 10 s connect
    # timeout (asyncpg's default is 60) bounds how long a cache miss waits on an unreachable database.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": CONNECT_TIMEOUT_S},
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest revision (blocking; call from a thread).

    Safe to run from many processes at once: the migration connection holds the schema lock
    (gateway/db/migrate_lock.py, taken in gateway/migrations/env.py), so the others wait, then no-op.
    """
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def schema_behind(url: str) -> str | None:
    """``None`` when the database at ``url`` is at this Relay's newest revision (or at a newer one a later
    release migrated to); otherwise one line saying where it is, what is needed and what to run."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()

    async def current() -> str | None:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        finally:
            await engine.dispose()

    at = asyncio.run(current())
    if at == head:
        return None
    if at is not None:
        try:
            script.get_revision(at)
        except CommandError:
            return None  # migrated by a newer release (a rolling upgrade): its migrations keep old code working
    where = "base (no Relay tables yet)" if at is None else at
    return f"the database schema is at {where}, this Relay needs {head}: run `relay migrate`"
