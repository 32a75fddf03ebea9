"""One schema lock per database, so N processes may migrate and bootstrap at once.

Postgres: a session-level advisory lock (``pg_advisory_lock``) held by the migration connection, and
the same key as a transaction-level lock (``pg_advisory_xact_lock``) around the first-run bootstrap.
A second process waits for the first, then finds nothing to do. SQLite: an exclusive ``flock`` on
``<dbfile>.migrate.lock`` beside the database (an in-memory database needs none: one process owns it).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncSession

SCHEMA_LOCK_KEY = -1401410929009158446
"""The advisory lock key: the first 8 bytes of sha256(b"relay.schema"), as a signed 64-bit integer."""


def sqlite_lock_path(url: str | URL) -> Path | None:
    """``<dbfile>.migrate.lock`` for a SQLite file URL; ``None`` for Postgres and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return Path(database + ".migrate.lock")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); blocks until it is free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def sqlite_schema_lock(url: str | URL) -> Iterator[None]:
    """The file lock of a SQLite database; nothing for any other URL."""
    path = sqlite_lock_path(url)
    if path is None:
        yield
        return
    with file_lock(path):
        yield


@contextmanager
def connection_schema_lock(connection: Connection) -> Iterator[None]:
    """Hold the schema lock for as long as ``connection`` migrates (sync connection, as Alembic uses).

    On Postgres the session-level advisory lock is taken and committed before Alembic begins its own
    transaction, and released afterwards (closing the connection would release it too).
    """
    if connection.dialect.name != "postgresql":
        with sqlite_schema_lock(connection.engine.url):
            yield
        return
    connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()  # a failed migration leaves an aborted transaction; unlock needs a fresh one
        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
        connection.commit()


async def transaction_schema_lock(session: AsyncSession) -> None:
    """Take the schema lock for the rest of ``session``'s transaction (Postgres; SQLite uses the file lock)."""
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
