"""``GET /api/v1/catalog``: the built-in catalog as this gateway runs it (which providers are on, prices)."""

from __future__ import annotations

import msgspec
from litestar import get

from gateway.api.management.access import Db, Svc
from gateway.catalog.state import ProviderState, provider_states


class CatalogModelOut(msgspec.Struct, kw_only=True):
    name: str
    aliases: list[str]
    upstream_model: str
    input_price: float
    """USD per million tokens (the operator's override, if any), like the three other prices."""
    output_price: float
    cache_read_price: float
    cache_write_price: float
    context_window: int
    max_output_tokens: int
    capabilities: list[str]


class CatalogProviderOut(msgspec.Struct, kw_only=True):
    name: str
    display_name: str
    dialect: str
    enabled: bool
    """Whether the operator turned the provider on: only then are its models usable."""
    docs_url: str
    models: list[CatalogModelOut]


class Catalog(msgspec.Struct, kw_only=True):
    providers: list[CatalogProviderOut]


def _provider(state: ProviderState) -> CatalogProviderOut:
    p = state.provider
    models = []
    for m in p.models:
        price = state.price(m)
        models.append(
            CatalogModelOut(
                name=m.name,
                aliases=list(m.aliases),
                upstream_model=m.upstream_model,
                input_price=price.input,
                output_price=price.output,
                cache_read_price=price.cache_read,
                cache_write_price=price.cache_write,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
                capabilities=sorted(m.capabilities),
            )
        )
    return CatalogProviderOut(
        name=p.name,
        display_name=p.display_name,
        dialect=p.dialect.value,
        enabled=state.enabled,
        docs_url=p.docs_url,
        models=models,
    )


@get("/catalog", tags=["catalog"])
async def catalog(db: Db, services: Svc) -> Catalog:
    states = await provider_states(db, services.box, services.settings.provider_env)
    return Catalog(providers=[_provider(s) for s in states])
