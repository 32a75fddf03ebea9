"""Alembic owns the schema: every migration runs up and down on both backends, and matches the tables."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import UniqueConstraint
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.session import alembic_config
from gateway.db.tables import Base
from gateway.metering import partitions


def _diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(
                        MigrationContext.configure(
                            c, opts={"compare_type": False, "include_name": partitions.include_name}
                        ),
                        Base.metadata,
                    )
                )
        finally:
            await engine.dispose()

    diff = asyncio.run(run())
    if url.startswith("postgresql"):  # the one difference partitioning forces, and only as the pair
        forced = [d for d in diff if _request_id_uniqueness(d)]
        if sorted(_request_id_uniqueness(d) for d in forced) == ["add:request_id", "remove:request_id,created_at"]:
            diff = [d for d in diff if all(d is not f for f in forced)]
    return diff


def _request_id_uniqueness(diff: object) -> str:
    """``usage_events``' request-id uniqueness in a diff entry ('' for any other entry).

    The model keeps SQLite's ``UNIQUE (request_id)``; Postgres's partitioned table has ``(request_id,
    created_at)``, as a partitioned table's unique constraints must hold the partition key (its
    primary key, ``(id, created_at)``, is not compared by Alembic; the partitions are not the
    models', ``partitions.include_name``).
    """
    if not (isinstance(diff, tuple) and len(diff) == 2 and isinstance(diff[1], UniqueConstraint)):
        return ""
    kind, constraint = diff
    if constraint.table.name != "usage_events" or kind not in ("add_constraint", "remove_constraint"):
        return ""
    return f"{kind.split('_')[0]}:{','.join(c.name for c in constraint.columns)}"


def test_upgrade_downgrade_upgrade_and_schema_matches_tables(backend):
    _, settings = backend
    cfg = alembic_config(settings.database_url)
    command.upgrade(cfg, "head")
    assert _diff(settings.database_url) == []
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    assert _diff(settings.database_url) == []
