"""What the relay learns about a model while serving it, kept in the model's capability profile.

Today: the output limit an upstream stated in a 400 (``gateway.upstreams.output_limit``). It joins the
model's profile like a probe's findings (``relay models show`` lists it), so every process clamps to it
once its model cache refreshes. A limit the operator or a probe already set is never overwritten.
Catalog models carry their limits in the catalog and have no row here.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.tables import ModelRow
from gateway.manage.tenants import audit


async def remember_output_limit(sessions: async_sessionmaker[AsyncSession], model_id: str, limit: int) -> bool:
    """Keep ``limit`` as the model's ``max_output_tokens``; False when there is no row or a limit is set."""
    async with sessions.begin() as db:
        model = await db.get(ModelRow, model_id)
        if model is None or "max_output_tokens" in (model.profile or {}) or model.max_output_tokens:
            return False
        model.profile = {**(model.profile or {}), "max_output_tokens": limit}  # a new dict: the column is dirty
        await audit(db, model.tenant_id, "relay", "model.learned", model.name, {"max_output_tokens": limit})
    return True
