"""``/api/v1/models`` (the tenant's custom models) and ``/api/v1/platform/models`` (built-in ones)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, UnsetType

from gateway.api.management.access import (
    CurrentActor,
    Db,
    Owner,
    Svc,
    after_commit,
    owner_id,
    provide_platform_owner,
    provide_tenant_owner,
)
from gateway.api.management.fields import Body, ModelName, PositiveInt, Price, changes_of
from gateway.db.tables import ModelRow, UpstreamRow
from gateway.errors import NotFound
from gateway.manage import upstreams
from gateway.manage.documents import Model, model_fields, model_out


class ModelCreate(Body):
    name: ModelName
    """The public model name clients send."""
    upstream_id: str
    """An upstream of the same owner (the tenant's own, or a built-in one for platform models)."""
    upstream_model: ModelName
    input_price: Price = 0.0
    """USD per million tokens, like the three other prices."""
    output_price: Price = 0.0
    cache_read_price: Price | None = None
    """Absent or null: the input price (a cached token is never billed at nothing unless you say ``0``)."""
    cache_write_price: Price | None = None
    context_window: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    profile: dict[str, Any] = {}
    """Capability-profile overrides, on top of the upstream's (see ``relay models show``)."""
    fallbacks: list[ModelName] = []


class ModelUpdate(Body):
    name: ModelName | UnsetType = UNSET
    upstream_id: str | UnsetType = UNSET
    upstream_model: ModelName | UnsetType = UNSET
    input_price: Price | UnsetType = UNSET
    output_price: Price | UnsetType = UNSET
    cache_read_price: Price | UnsetType = UNSET
    cache_write_price: Price | UnsetType = UNSET
    context_window: PositiveInt | UnsetType | None = UNSET
    max_output_tokens: PositiveInt | UnsetType | None = UNSET
    profile: dict[str, Any] | UnsetType = UNSET
    fallbacks: list[ModelName] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class ModelDetail(Model, kw_only=True):
    effective_profile: dict[str, Any]
    """What the converter uses: dialect defaults, then the upstream's keys, then the model's."""


def model_detail(model: ModelRow, up: UpstreamRow) -> ModelDetail:
    profile = upstreams.effective_profile(up, model.profile, model.max_output_tokens).to_dict()
    return ModelDetail(**model_fields(model, up), effective_profile=profile)


class ModelController(Controller):
    path = "/models"
    tags = ["models"]
    dependencies = {"owner": Provide(provide_tenant_owner)}

    @get("/")
    async def list_models(self, db: Db, owner: Owner) -> list[Model]:
        return [model_out(m, u) for m, u in await upstreams.list_models(db, tenant=owner)]

    @post("/")
    async def create_model(
        self, data: JSONBody[ModelCreate], db: Db, owner: Owner, actor: CurrentActor, services: Svc
    ) -> ModelDetail:
        try:
            upstream = await upstreams.upstream_by_id(db, data.upstream_id, tenant_id=owner_id(owner))
        except NotFound as exc:
            raise NotFound(f"upstream_id: {exc.message}") from None
        row = await upstreams.add_model(
            db,
            tenant=owner,
            name=data.name,
            upstream=upstream,
            upstream_model=data.upstream_model,
            input_price=data.input_price,
            output_price=data.output_price,
            cache_read_price=data.cache_read_price,
            cache_write_price=data.cache_write_price,
            context_window=data.context_window,
            max_output_tokens=data.max_output_tokens,
            profile=data.profile,
            fallbacks=list(data.fallbacks),
            actor=actor.label,
        )
        after_commit(db, lambda: services.invalidation.invalidate("models"))
        return model_detail(row, upstream)

    @get("/{model_id:str}")
    async def get_model(self, model_id: FromPath[str], db: Db, owner: Owner) -> ModelDetail:
        return model_detail(*await upstreams.model_by_id(db, model_id, tenant_id=owner_id(owner)))

    @patch("/{model_id:str}")
    async def update_model(
        self,
        model_id: FromPath[str],
        data: JSONBody[ModelUpdate],
        db: Db,
        owner: Owner,
        actor: CurrentActor,
        services: Svc,
    ) -> ModelDetail:
        row, _ = await upstreams.model_by_id(db, model_id, tenant_id=owner_id(owner))
        row, upstream = await upstreams.update_model(db, row, changes_of(data), actor=actor.label)
        after_commit(db, lambda: services.invalidation.invalidate("models"))
        return model_detail(row, upstream)

    @delete("/{model_id:str}")
    async def delete_model(
        self, model_id: FromPath[str], db: Db, owner: Owner, actor: CurrentActor, services: Svc
    ) -> None:
        row, _ = await upstreams.model_by_id(db, model_id, tenant_id=owner_id(owner))
        await upstreams.delete_model(db, row, actor=actor.label)
        after_commit(db, lambda: services.invalidation.invalidate("models"))


class PlatformModelController(ModelController):
    path = "/platform/models"
    tags = ["platform"]
    dependencies = {"owner": Provide(provide_platform_owner, sync_to_thread=False)}
