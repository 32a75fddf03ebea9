"""Providers of the built-in catalog: the operator's switches, credentials and price overrides.

A provider is on when its ``providers`` row says so (set by ``relay providers enable`` or the
API), or, without a row, when the environment turns it on (``RELAY_PROVIDER_<NAME>_API_KEY``, or
``RELAY_PROVIDER_<NAME>_ENABLED=1`` for one that needs no key). A stored key wins over the
environment's. Only models of providers that are on are visible.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogModel, CatalogProvider, load_catalog, provider_key_env
from gateway.catalog.state import provider_secret_context
from gateway.db.tables import ProviderRow
from gateway.errors import InvalidRequest, NotFound
from gateway.manage.tenants import audit
from gateway.manage.upstreams import check_base_url
from gateway.security import SecretBox

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")


def _provider(name: str) -> CatalogProvider:
    provider = load_catalog().get(name)
    if provider is None:
        raise NotFound(f"provider {name!r} is not in the catalog (see `relay catalog list`)")
    return provider


async def _row(session: AsyncSession, name: str) -> ProviderRow:
    row = await session.get(ProviderRow, name)
    if row is None:
        row = ProviderRow(name=name, enabled=False, price_overrides={})
        session.add(row)
    return row


async def enable_provider(
    session: AsyncSession,
    *,
    box: SecretBox,
    name: str,
    api_key: str | None,
    env: Mapping[str, str],
    base_url: str | None = None,
    actor: str = "cli",
) -> ProviderRow:
    provider = _provider(name)
    if provider.requires_key and not api_key and not env.get(provider_key_env(name), "").strip():
        existing = await session.get(ProviderRow, name)
        if existing is None or not existing.api_key_encrypted:
            raise InvalidRequest(f"provider {name!r} needs an API key (--api-key-env VAR or --api-key-stdin)")
    row = await _row(session, name)
    row.enabled = True
    if api_key:
        row.api_key_encrypted = box.encrypt(api_key, context=provider_secret_context(name))
    if base_url:
        row.base_url = check_base_url(base_url)
    await audit(session, None, actor, "provider.enable", name, {"base_url": row.base_url})
    return row


async def disable_provider(session: AsyncSession, *, name: str, actor: str = "cli") -> ProviderRow:
    _provider(name)
    row = await _row(session, name)
    row.enabled = False
    await audit(session, None, actor, "provider.disable", name)
    return row


async def set_price(
    session: AsyncSession, *, model: str, prices: Mapping[str, float], actor: str = "cli"
) -> tuple[str, CatalogModel]:
    """Override some of a catalog model's four prices (USD per million tokens)."""
    for provider in load_catalog().values():
        found = provider.model(model)
        if found is not None:
            break
    else:
        raise NotFound(f"model {model!r} is not in the catalog")
    for field, value in prices.items():
        if field not in PRICE_FIELDS:
            raise InvalidRequest(f"price field {field!r}: use one of {', '.join(PRICE_FIELDS)}")
        if value < 0:
            raise InvalidRequest(f"{field} price must not be negative")
    row = await _row(session, provider.name)
    overrides = dict(row.price_overrides or {})
    overrides[found.name] = {**overrides.get(found.name, {}), **prices}
    row.price_overrides = overrides  # a new dict, so the JSON column is seen as changed
    await audit(session, None, actor, "provider.price", found.name, dict(prices))
    return provider.name, found
