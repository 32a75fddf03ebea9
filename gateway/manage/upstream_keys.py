"""An upstream's key pool: its credentials (``upstream_keys`` rows), with weight, priority, own limits and state.

Every credential is sealed with its upstream's context (``upstream_secret_context``). ``relay upstreams add
--api-key-*`` stores the pool's first key, named ``default``; ``upstreams update --api-key-*`` replaces the
secret of the pool's first key (best priority, then oldest), and ``--remove-api-key`` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import UpstreamKeyRow, UpstreamRow, UsageEvent, utcnow
from gateway.db.upstreams import ACTIVE, keys_of
from gateway.errors import InvalidRequest, NotFound
from gateway.manage.names import clean_name
from gateway.manage.tenants import audit
from gateway.security import SecretBox, mask_secret, upstream_secret_context

DISABLED = "disabled"


def key_hint(row: UpstreamKeyRow, box: SecretBox) -> str:
    """The last four characters of a stored key ("…" when it cannot be opened): never the key itself."""
    try:
        return mask_secret(box.decrypt(row.api_key_encrypted, context=upstream_secret_context(row.upstream_id)))
    except Exception:  # sealed under another secret key: say it exists, nothing more
        return "…"


def _check_numbers(weight: int | None, priority: int | None, rpm: int | None, tpm: int | None) -> None:
    if weight is not None and not 0 <= weight <= 1000:
        raise InvalidRequest("weight: must be between 0 and 1000")
    if priority is not None and not 1 <= priority <= 100:
        raise InvalidRequest("priority: must be between 1 and 100 (lower is used first)")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and value < 1:
            raise InvalidRequest(f"{name}: must be at least 1")


async def add_key(
    session: AsyncSession,
    upstream: UpstreamRow,
    secret: str,
    box: SecretBox,
    *,
    name: str = "",
    weight: int = 1,
    priority: int = 1,
    rpm: int | None = None,
    tpm: int | None = None,
    actor: str = "cli",
) -> UpstreamKeyRow:
    secret = secret.strip()
    if not secret:
        raise InvalidRequest("the upstream key is empty")
    _check_numbers(weight, priority, rpm, tpm)
    key = UpstreamKeyRow(
        upstream_id=upstream.id,
        name=clean_name(name, "key name") if name else f"key-{len(await _rows(session, upstream.id)) + 1}",
        api_key_encrypted=box.encrypt(secret, context=upstream_secret_context(upstream.id)),
        weight=weight,
        priority=priority,
        rpm_limit=rpm,
        tpm_limit=tpm,
        state=ACTIVE,
    )
    session.add(key)
    await session.flush()
    detail = {"key_id": key.id, "weight": weight, "priority": priority}
    await audit(session, upstream.tenant_id, actor, "upstream_key.add", upstream.name, detail)
    return key


async def _rows(session: AsyncSession, upstream_id: str) -> list[UpstreamKeyRow]:
    return (await keys_of(session, [upstream_id]))[upstream_id]


async def get_key(session: AsyncSession, upstream: UpstreamRow, key_id: str) -> UpstreamKeyRow:
    """A key of ``upstream`` by its id, or (unambiguously) its name."""
    for row in await _rows(session, upstream.id):
        if key_id in (row.id, row.name):
            return row
    raise NotFound(f"upstream {upstream.name!r} has no key {key_id!r}")


async def remove_key(session: AsyncSession, upstream: UpstreamRow, key: UpstreamKeyRow, *, actor: str = "cli") -> None:
    await session.delete(key)
    await audit(session, upstream.tenant_id, actor, "upstream_key.remove", upstream.name, {"key_id": key.id})


async def set_key_state(
    session: AsyncSession,
    upstream: UpstreamRow,
    key: UpstreamKeyRow,
    *,
    enabled: bool,
    reason: str = "disabled by an operator",
    actor: str = "cli",
) -> None:
    """Enable (clears the reason) or disable a key; a disabled key stays out of the pool until enabled."""
    key.state = ACTIVE if enabled else DISABLED
    key.disabled_reason = None if enabled else reason[:500]
    key.disabled_at = None if enabled else utcnow()
    action = "upstream_key.enable" if enabled else "upstream_key.disable"
    await audit(session, upstream.tenant_id, actor, action, upstream.name, {"key_id": key.id, "reason": reason[:200]})


async def update_key(
    session: AsyncSession,
    upstream: UpstreamRow,
    key: UpstreamKeyRow,
    *,
    weight: int | None = None,
    priority: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    name: str | None = None,
    actor: str = "cli",
) -> None:
    """Change a key's weight, priority, limits (0 removes a limit) or name; None keeps each."""
    _check_numbers(weight, priority, rpm or None, tpm or None)
    if weight is not None:
        key.weight = weight
    if priority is not None:
        key.priority = priority
    if rpm is not None:
        key.rpm_limit = rpm or None
    if tpm is not None:
        key.tpm_limit = tpm or None
    if name is not None:
        key.name = clean_name(name, "key name")
    await audit(session, upstream.tenant_id, actor, "upstream_key.update", upstream.name, {"key_id": key.id})


async def disable_failed_key(session: AsyncSession, key_id: str, reason: str) -> UpstreamKeyRow | None:
    """The relay's verdict on a key the upstream refused (401/403): disabled with its reason, once.

    Returns the row when this call disabled it (None: gone, or already disabled), for the alert.
    """
    key = await session.get(UpstreamKeyRow, key_id)
    if key is None or key.state != ACTIVE:
        return None
    key.state = DISABLED
    key.disabled_reason = reason[:500]
    key.disabled_at = utcnow()
    upstream = await session.get(UpstreamRow, key.upstream_id)
    tenant_id = upstream.tenant_id if upstream else None
    await audit(session, tenant_id, "relay", "upstream_key.disable", upstream.name if upstream else "",
                {"key_id": key.id, "reason": reason[:200]})  # fmt: skip
    return key


async def set_first_key(session: AsyncSession, upstream: UpstreamRow, secret: str | None, box: SecretBox) -> None:
    """``upstreams add|update --api-key-*``: the pool's first key gets ``secret`` (created when the pool is
    empty); None removes the first key."""
    rows = await _rows(session, upstream.id)
    if secret is None:
        if rows:
            await session.delete(rows[0])
        return
    sealed = box.encrypt(secret.strip(), context=upstream_secret_context(upstream.id))
    if rows:
        rows[0].api_key_encrypted = sealed
    else:  # audited as the upstream's creation or update that stores it
        session.add(UpstreamKeyRow(upstream_id=upstream.id, name="default", api_key_encrypted=sealed, state=ACTIVE))
        await session.flush()


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """What one pool key carried since a moment (from the ledger): requests, tokens, failed requests."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    errors: int = 0
    """Requests answered with a status of 400 or more while this key carried their last attempt."""


async def key_usage(session: AsyncSession, upstream_id: str, since: datetime) -> dict[str, KeyUsage]:
    """Per key of ``upstream_id`` (present keys only), its ledger totals since ``since``; keys without
    requests are left out. One grouped query over the (upstream_key_id, created_at) index."""
    pool = sa.select(UpstreamKeyRow.id).where(UpstreamKeyRow.upstream_id == upstream_id)
    failed = sa.case((UsageEvent.status >= 400, 1), else_=0)
    query = (
        sa.select(
            UsageEvent.upstream_key_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(UsageEvent.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(UsageEvent.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(UsageEvent.cache_read_tokens), 0),
            sa.func.coalesce(sa.func.sum(failed), 0),
        )
        .where(UsageEvent.upstream_key_id.in_(pool), UsageEvent.created_at >= since)
        .group_by(UsageEvent.upstream_key_id)
    )
    return {
        key_id: KeyUsage(int(n), int(inp), int(out), int(cached), int(errors))
        for key_id, n, inp, out, cached, errors in await session.execute(query)
    }
