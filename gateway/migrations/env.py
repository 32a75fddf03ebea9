"""Alembic environment: async engine, batch mode for SQLite, URL from the config or RELAY_DATABASE_URL.

Every online run holds the schema lock (gateway/db/migrate_lock.py) on its connection, so concurrent
``relay migrate`` runs (N pods' init containers, replicas auto-migrating SQLite) wait and then no-op.
"""

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.migrate_lock import connection_schema_lock
from gateway.db.tables import Base
from gateway.metering.partitions import include_name
from gateway.settings import Settings, normalise_database_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        url = os.environ.get("RELAY_DATABASE_URL") or Settings().database_url
    return normalise_database_url(url)


def _run(connection: Connection) -> None:
    with connection_schema_lock(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=include_name,  # the ledger's monthly partitions are the gateway's, not the models'
        )
        with context.begin_transaction():
            context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
