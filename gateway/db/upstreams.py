"""Stored upstreams as domain records: each with its key pool decrypted (``upstream_keys``, active keys only)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import UpstreamKeyRow, UpstreamRow
from gateway.domain import Dialect, Upstream, UpstreamKey
from gateway.security import SecretBox, upstream_secret_context

log = logging.getLogger("relay")
ACTIVE = "active"
_ORDER = (UpstreamKeyRow.priority, UpstreamKeyRow.created_at, UpstreamKeyRow.id)


async def keys_of(session: AsyncSession, upstream_ids: Iterable[str]) -> dict[str, list[UpstreamKeyRow]]:
    """Every key row of these upstreams, in pool order (priority, then age)."""
    ids = list(upstream_ids)
    out: dict[str, list[UpstreamKeyRow]] = {uid: [] for uid in ids}
    if not ids:
        return out
    rows = await session.scalars(sa.select(UpstreamKeyRow).where(UpstreamKeyRow.upstream_id.in_(ids)).order_by(*_ORDER))
    for row in rows:
        out[row.upstream_id].append(row)
    return out


def upstream_from_rows(row: UpstreamRow, keys: list[UpstreamKeyRow], box: SecretBox) -> Upstream:
    """The domain record of a stored upstream with its active keys decrypted (bound to the upstream's row).

    A key sealed under another secret key is left out of the pool, with a warning.
    """
    context = upstream_secret_context(row.id)
    pool: list[UpstreamKey] = []
    for k in keys:
        if k.state != ACTIVE:
            continue
        try:
            secret = box.decrypt(k.api_key_encrypted, context=context)
        except Exception:  # InvalidTag: sealed under another RELAY_SECRET_KEY
            log.warning("upstream %s: key %s cannot be opened with this secret key; left out", row.name, k.id)
            continue
        pool.append(UpstreamKey(k.id, secret, k.name, max(k.weight, 0), k.priority, k.rpm_limit, k.tpm_limit))
    first = pool[0] if pool else None
    return Upstream(
        id=row.id,
        name=row.name,
        tenant_id=row.tenant_id,
        dialect=Dialect(row.dialect),
        base_url=row.base_url,
        api_key=first.secret if first else "",
        key_id=first.id if first else "",
        extra_headers=tuple((row.extra_headers or {}).items()),
        timeout_s=row.timeout_s,
        profile=dict(row.profile or {}),
        keys=tuple(pool),
    )


async def load_upstream(session: AsyncSession, row: UpstreamRow, box: SecretBox) -> Upstream:
    """``row`` as a domain record, its pool loaded (probes, the CLI's ``models test``)."""
    return upstream_from_rows(row, (await keys_of(session, [row.id]))[row.id], box)
