"""``GET /api/v1/catalog``: the built-in catalog as this gateway runs it (which providers are on, prices)."""

from __future__ import annotations

from litestar import get

from gateway.api.management.access import Db, Svc
from gateway.catalog.state import provider_states
from gateway.manage.documents import Catalog, catalog_provider_out


@get("/catalog", tags=["catalog"])
async def catalog(db: Db, services: Svc) -> Catalog:
    states = await provider_states(db, services.box, services.settings.provider_env)
    return Catalog(providers=[catalog_provider_out(s) for s in states])
