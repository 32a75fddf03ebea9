"""Fixtures of the storage-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.settings import Settings


@pytest.fixture
async def sessions(backend: tuple[str, Settings]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on each backend's migrated database, without a pool (each test owns its connections)."""
    engine = create_async_engine(backend[1].database_url, poolclass=NullPool)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()
