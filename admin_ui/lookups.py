"""Small read helpers shared by the pages: the tenant, the models it can use, the built-in catalog."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogModel
from gateway.catalog.state import ProviderState, provider_states
from gateway.db.tables import Tenant
from gateway.manage import tenants, upstreams
from gateway.services import Services


@dataclass(frozen=True, slots=True)
class BuiltIn:
    """A built-in model as the models page lists it."""

    name: str
    provider: str
    aliases: tuple[str, ...]
    input: float
    output: float
    cache_read: float
    cache_write: float
    context_window: int | None
    capabilities: tuple[str, ...]


async def tenant_of(db: AsyncSession, tenant_id: str) -> Tenant:
    return await tenants.tenant_by_id(db, tenant_id)


async def states(db: AsyncSession, services: Services) -> list[ProviderState]:
    return await provider_states(db, services.box, services.settings.provider_env)


def _built_in(state: ProviderState, model: CatalogModel) -> BuiltIn:
    price = state.price(model)
    return BuiltIn(
        name=model.name,
        provider=state.provider.display_name,
        aliases=model.aliases,
        input=price.input,
        output=price.output,
        cache_read=price.cache_read,
        cache_write=price.cache_write,
        context_window=model.context_window,
        capabilities=tuple(sorted(model.capabilities)),
    )


async def built_in_models(db: AsyncSession, services: Services) -> list[BuiltIn]:
    """The catalog models of enabled providers, then the operator's own platform models."""
    out = [_built_in(s, m) for s in await states(db, services) if s.enabled for m in s.provider.models]
    for model, up in await upstreams.list_models(db, tenant=None):
        if model.enabled:
            out.append(
                BuiltIn(
                    name=model.name,
                    provider=up.name,
                    aliases=(),
                    input=model.input_price,
                    output=model.output_price,
                    cache_read=model.cache_read_price,
                    cache_write=model.cache_write_price,
                    context_window=model.context_window,
                    capabilities=tuple(model.capabilities.get("features", []) if model.capabilities else ()),
                )
            )
    return out


async def usable_models(db: AsyncSession, services: Services, tenant: Tenant) -> list[str]:
    """Every public model name a key of this tenant could be given: custom first, then built-in."""
    custom = [m.name for m, _ in await upstreams.list_models(db, tenant=tenant) if m.enabled]
    names = dict.fromkeys(custom)
    for b in await built_in_models(db, services):
        names.setdefault(b.name)
    return list(names)
