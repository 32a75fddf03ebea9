"""Limits and budgets of keys and tenants (the metering rules read them through ``Principal.limits``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import ApiKey, Tenant
from gateway.errors import InvalidRequest
from gateway.manage.tenants import audit

PERIODS = ("month", "total")
UNSET: Any = object()
"""Leave a field as it is (``None`` removes a limit)."""


def usd_to_micro(value: float | None, field: str) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise InvalidRequest(f"{field}: must not be negative")
    return round(value * 1_000_000)


def _limit(value: int | None, field: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidRequest(f"{field}: must be a positive integer (or unset for no limit)")
    return value


def _period(value: str | None) -> str | None:
    if value is not None and value not in PERIODS:
        raise InvalidRequest(f"budget_period: must be one of {', '.join(PERIODS)}")
    return value


async def set_key_limits(
    session: AsyncSession,
    row: ApiKey,
    *,
    rpm: int | None = UNSET,
    tpm: int | None = UNSET,
    concurrency: int | None = UNSET,
    budget_usd: float | None = UNSET,
    budget_period: str | None = UNSET,
    actor: str = "cli",
) -> ApiKey:
    """Change a key's limits; takes effect on every worker within the key cache's lifetime (seconds)."""
    changed: dict[str, object] = {}
    if rpm is not UNSET:
        row.rpm_limit = changed["rpm"] = _limit(rpm, "rpm")
    if tpm is not UNSET:
        row.tpm_limit = changed["tpm"] = _limit(tpm, "tpm")
    if concurrency is not UNSET:
        row.concurrency_limit = changed["concurrency"] = _limit(concurrency, "concurrency")
    if budget_usd is not UNSET:
        row.budget_micro_usd = changed["budget_micro_usd"] = usd_to_micro(budget_usd, "budget")
    if budget_period is not UNSET:
        row.budget_period = changed["budget_period"] = _period(budget_period)
    if changed:
        await audit(session, row.tenant_id, actor, "key.limits", row.prefix, changed)
    return row


async def set_tenant_budget(
    session: AsyncSession, tenant: Tenant, *, budget_usd: float | None, budget_period: str | None, actor: str = "cli"
) -> Tenant:
    tenant.budget_micro_usd = usd_to_micro(budget_usd, "budget")
    tenant.budget_period = _period(budget_period)
    await audit(
        session, tenant.id, actor, "tenant.budget", tenant.name,
        {"budget_micro_usd": tenant.budget_micro_usd, "budget_period": tenant.budget_period},
    )  # fmt: skip
    return tenant
