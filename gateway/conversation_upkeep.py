"""Upkeep of the conversation store: expired turns purged in batches, and what a tenant holds now."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import ConversationTurn

__all__ = ["held_conversations", "purge_expired"]


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime], *, limit: int, pause_s: float
) -> int:
    """Delete expired turns, ``limit`` rows a transaction (walking ``ix_conversation_turns_expires``)."""
    t = ConversationTurn
    deleted = 0
    while True:
        old = sa.select(t.id).where(t.expires_at <= clock()).order_by(t.expires_at).limit(limit).scalar_subquery()
        async with sessions.begin() as session:
            result = await session.execute(
                sa.delete(t).where(t.id.in_(old)).execution_options(synchronize_session=False)
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        if count < limit:
            return deleted
        await asyncio.sleep(pause_s)


async def held_conversations(session: AsyncSession, tenant_id: str, now: datetime | None = None) -> tuple[int, int]:
    """A tenant's live stored turns and their total plaintext size in bytes (``relay usage``, the admin UI).

    Conversations only: the message-batch routes kept in the same table are not turns of a conversation."""
    t = ConversationTurn
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.size_bytes), 0)).where(
        t.tenant_id == tenant_id, t.expires_at > (now or datetime.now(UTC)), t.kind.in_(("response", "thread"))
    )
    count, size = (await session.execute(query)).one()
    return int(count), int(size)
