"""``/api/v1/keys``: the tenant's ``sk-`` keys. The secret is in the creation response only; digests never leave."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, Meta, UnsetType

from gateway.api.management.access import CurrentActor, Db, OwnTenant, Svc, after_commit, provide_tenant
from gateway.api.management.fields import Body, ModelName, changes_of
from gateway.manage import keys
from gateway.manage.documents import Key, key_fields, key_out

Expiry = Annotated[datetime, Meta(tz=True)]
Glob = Annotated[str, Meta(min_length=1, max_length=200)]
KeyName = Annotated[str, Meta(max_length=200)]


class Alias(msgspec.Struct, forbid_unknown_fields=True):
    """A requested model name (glob) rewritten to a model; the first matching alias wins."""

    pattern: Glob
    model: ModelName


class KeyCreate(Body):
    name: KeyName = ""
    allow_custom_models: bool = False
    """Whether the key reaches the tenant's custom models (built-in models are always reachable)."""
    allowed_models: list[Glob] = []
    """Globs of public model names the key may use; empty allows every model."""
    aliases: list[Alias] = []
    claude_code_profile: dict[str, ModelName] = {}
    """Claude Code's model families (opus, sonnet, haiku) routed to these models."""
    expires_at: Expiry | None = None


class KeyUpdate(Body):
    name: KeyName | UnsetType = UNSET
    allow_custom_models: bool | UnsetType = UNSET
    allowed_models: list[Glob] | UnsetType = UNSET
    aliases: list[Alias] | UnsetType = UNSET
    claude_code_profile: dict[str, ModelName] | UnsetType = UNSET
    expires_at: Expiry | UnsetType | None = UNSET


class KeyCreated(Key, kw_only=True):
    secret: str
    """The ``sk-`` key. Shown in this response only: store it now."""


class KeyController(Controller):
    path = "/keys"
    tags = ["keys"]
    dependencies = {"tenant": Provide(provide_tenant)}

    @get("/")
    async def list_keys(self, db: Db, tenant: OwnTenant) -> list[Key]:
        return [key_out(r) for r in await keys.list_keys(db, tenant=tenant)]

    @post("/")
    async def create_key(
        self, data: JSONBody[KeyCreate], db: Db, tenant: OwnTenant, actor: CurrentActor, services: Svc
    ) -> KeyCreated:
        new = await keys.create_key(
            db,
            tenant=tenant,
            secret_key=services.settings.secret_key,
            name=data.name.strip(),
            allow_custom_models=data.allow_custom_models,
            allowed_models=list(data.allowed_models),
            aliases=[(a.pattern, a.model) for a in data.aliases],
            expires_at=data.expires_at,
            claude_code_profile=dict(data.claude_code_profile),
            actor=actor.label,
        )
        return KeyCreated(**key_fields(new.row), secret=new.secret)

    @get("/{key_id:str}")
    async def get_key(self, key_id: FromPath[str], db: Db, tenant: OwnTenant) -> Key:
        return key_out(await keys.key_by_id(db, key_id, tenant_id=tenant.id))

    @patch("/{key_id:str}")
    async def update_key(
        self,
        key_id: FromPath[str],
        data: JSONBody[KeyUpdate],
        db: Db,
        tenant: OwnTenant,
        actor: CurrentActor,
        services: Svc,
    ) -> Key:
        row = await keys.key_by_id(db, key_id, tenant_id=tenant.id)
        changes = changes_of(data)
        if "aliases" in changes:
            changes["aliases"] = [(a.pattern, a.model) for a in changes["aliases"]]
        await keys.update_key(db, row, changes, actor=actor.label)
        after_commit(db, lambda: services.invalidation.invalidate("keys"))
        return key_out(row)

    @post("/{key_id:str}/revoke", status_code=200)
    async def revoke_key(
        self, key_id: FromPath[str], db: Db, tenant: OwnTenant, actor: CurrentActor, services: Svc
    ) -> Key:
        row = await keys.key_by_id(db, key_id, tenant_id=tenant.id)
        await keys.revoke_key(db, row.id, tenant_id=tenant.id, actor=actor.label)
        after_commit(db, lambda: services.invalidation.invalidate("keys"))
        return key_out(row)
