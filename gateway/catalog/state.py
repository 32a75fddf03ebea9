"""Which catalog providers are on, with which credential, base URL and prices (read by routing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogModel, CatalogProvider, enabled_providers, load_catalog, provider_key_env
from gateway.db.tables import ProviderRow
from gateway.domain import Price
from gateway.security import SecretBox


def provider_secret_context(name: str) -> str:
    return f"provider:{name}"


@dataclass(frozen=True, slots=True)
class ProviderState:
    """A catalog provider as the gateway runs it right now."""

    provider: CatalogProvider
    enabled: bool
    api_key: str
    base_url: str
    price_overrides: Mapping[str, Mapping[str, float]]
    key_source: str  # "stored", "environment" or "none"

    def price(self, model: CatalogModel) -> Price:
        over = self.price_overrides.get(model.name, {})
        base = model.price
        return Price(
            input=over.get("input", base.input),
            output=over.get("output", base.output),
            cache_read=over.get("cache_read", base.cache_read),
            cache_write=over.get("cache_write", base.cache_write),
        )


async def provider_states(session: AsyncSession, box: SecretBox, env: Mapping[str, str]) -> list[ProviderState]:
    catalog = load_catalog()
    rows = {r.name: r for r in await session.scalars(sa.select(ProviderRow))}
    on_by_env = set(enabled_providers(catalog, env))
    states = []
    for name, provider in catalog.items():
        row = rows.get(name)
        env_key = env.get(provider_key_env(name), "").strip()
        stored = (
            box.decrypt(row.api_key_encrypted, context=provider_secret_context(name))
            if row and row.api_key_encrypted
            else ""
        )
        states.append(
            ProviderState(
                provider=provider,
                enabled=row.enabled if row else name in on_by_env,
                api_key=stored or env_key,
                base_url=(row.base_url if row and row.base_url else provider.base_url),
                price_overrides=(row.price_overrides if row else {}) or {},
                key_source="stored" if stored else "environment" if env_key else "none",
            )
        )
    return states
