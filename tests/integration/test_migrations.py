"""Alembic owns the schema: every migration runs up and down on both backends, and matches the tables."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.session import alembic_config
from gateway.db.tables import Base


def _diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(
                        MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_upgrade_downgrade_upgrade_and_schema_matches_tables(backend):
    _, settings = backend
    cfg = alembic_config(settings.database_url)
    command.upgrade(cfg, "head")
    assert _diff(settings.database_url) == []
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    assert _diff(settings.database_url) == []
