"""Migration 7e3a9b1c5d20 (key pools) on real data, on SQLite and Postgres: each upstream's stored ciphertext
moves into ``upstream_keys`` byte for byte (still opened with the *upstream's* context), and the downgrade
puts the pool's first key back on its upstream.

Each backend gets a scratch database of its own: the session's shared one must stay at head for the others.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from support import SECRET, create_postgres_database, drop_postgres_database, service_missing

from gateway.db.session import alembic_config
from gateway.security import SecretBox, derive_key, upstream_secret_context
from gateway.settings import normalise_database_url

BEFORE, POOLS = "9c4d2e7f1b35", "7e3a9b1c5d20"
BOX = SecretBox(derive_key(SECRET, "upstream-secrets"))


@pytest.fixture(params=["sqlite", "postgres"])
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own (async URL)."""
    if request.param == "sqlite":
        yield normalise_database_url(f"sqlite:///{tmp_path / 'pools.db'}")
        return
    try:
        url = normalise_database_url(create_postgres_database())
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    yield url
    drop_postgres_database(url)


def _sql(url: str, *statements: tuple[str, dict[str, Any]]) -> list[list[Any]]:
    """Run statements in one committed transaction; the rows of each."""

    async def go() -> list[list[Any]]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                out = []
                for text, params in statements:
                    result = await conn.execute(sa.text(text), params)
                    out.append([tuple(r) for r in result.all()] if result.returns_rows else [])
                return out
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _upstream(uid: str, tenant_id: str, sealed: str | None) -> tuple[str, dict[str, Any]]:
    return (
        "INSERT INTO upstreams (id, tenant_id, name, base_url, dialect, api_key_encrypted, extra_headers, profile,"
        " created_at) VALUES (:id, :t, :name, 'https://api.example/v1', 'openai', :sealed, '{}', '{}', :now)",
        {"id": uid, "t": tenant_id, "name": f"up-{uid[:6]}", "sealed": sealed, "now": datetime.now(UTC)},
    )


def test_the_stored_key_moves_into_the_pool_unchanged_and_back(scratch):
    cfg = alembic_config(scratch)
    command.upgrade(cfg, BEFORE)
    tenant, keyed, keyless = (secrets.token_hex(16) for _ in range(3))
    secret = "sk-live-" + secrets.token_hex(16)
    sealed = BOX.encrypt(secret, context=upstream_secret_context(keyed))
    _sql(
        scratch,
        (
            "INSERT INTO tenants (id, name, created_at) VALUES (:id, 'acme', :now)",
            {"id": tenant, "now": datetime.now(UTC)},
        ),
        _upstream(keyed, tenant, sealed),
        _upstream(keyless, tenant, None),
    )

    command.upgrade(cfg, POOLS)
    [pool] = _sql(
        scratch,
        ("SELECT upstream_id, name, api_key_encrypted, weight, priority, state FROM upstream_keys", {}),
    )
    assert pool == [(keyed, "default", sealed, 1, 1, "active")]  # the keyless upstream gets an empty pool
    assert BOX.decrypt(pool[0][2], context=upstream_secret_context(keyed)) == secret
    with pytest.raises(InvalidTag):  # bound to its upstream: another upstream's context cannot open it
        BOX.decrypt(pool[0][2], context=upstream_secret_context(keyless))
    [columns] = _sql(scratch, ("SELECT * FROM upstreams WHERE id = :id", {"id": keyed}))
    assert sealed not in columns[0]  # the column is gone, not left holding a copy

    # a second key of a worse priority, added later: the downgrade keeps the first (the one the pool used first)
    spare = BOX.encrypt("sk-spare-" + secrets.token_hex(8), context=upstream_secret_context(keyed))
    _sql(
        scratch,
        (
            "INSERT INTO upstream_keys (id, upstream_id, name, api_key_encrypted, weight, priority, state, created_at)"
            " VALUES (:id, :u, 'spare', :sealed, 1, 2, 'active', :at)",
            {"id": secrets.token_hex(16), "u": keyed, "sealed": spare, "at": datetime.now(UTC) - timedelta(days=1)},
        ),
    )
    command.downgrade(cfg, BEFORE)
    [back] = _sql(scratch, ("SELECT id, api_key_encrypted FROM upstreams ORDER BY id", {}))
    assert dict(back) == {keyed: sealed, keyless: None}
    assert BOX.decrypt(dict(back)[keyed], context=upstream_secret_context(keyed)) == secret

    command.upgrade(cfg, "head")  # and up again, to the same pool
    [again] = _sql(scratch, ("SELECT upstream_id, name, api_key_encrypted FROM upstream_keys", {}))
    assert again == [(keyed, "default", sealed)]
