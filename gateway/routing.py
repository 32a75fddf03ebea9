"""Model name + principal → Route, from in-process tables refreshed from the database.

Resolution, the same for both doors:
1. the key's aliases (glob patterns, first match wins) rewrite the name;
2. the tenant's custom models, only when the key's ``allow_custom_models`` switch is on;
3. the platform's built-in models;
4. a name ending in ``-thinking`` resolves as its base model with extended thinking on.
The key's allowed-models globs are enforced on the resolved public name. A name that resolves
to nothing is a 404 naming up to five close matches the key may use.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace
from fnmatch import fnmatchcase

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.cache import TTLCache
from gateway.catalog.state import ProviderState, provider_states
from gateway.db.outage import Outage
from gateway.db.tables import ModelRow, UpstreamRow
from gateway.db.upstreams import keys_of, upstream_from_rows
from gateway.domain import Price, Principal, Route, Upstream, merge_profile
from gateway.errors import GatewayError, ModelNotFound, PermissionDenied
from gateway.security import SecretBox

THINKING_SUFFIX = "-thinking"
ModelTable = dict[str, Route]


class Router:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        ttl_s: float = 5.0,
        provider_env: Mapping[str, str] | None = None,
        *,
        outage: Outage | None = None,
        stale_if_error_s: float = 0.0,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._provider_env = dict(provider_env or {})
        self._tables: TTLCache[str | None, ModelTable] = TTLCache(
            self._load, ttl_s=ttl_s, grace_s=1.0, outage=outage, stale_if_error_s=stale_if_error_s
        )

    def forget(self) -> None:
        self._tables.forget()

    async def resolve(self, principal: Principal, name: str) -> Route:
        target = _apply_alias(principal, name)
        route = await self._lookup(principal, target)
        if route is None and target.endswith(THINKING_SUFFIX):
            base = await self._lookup(principal, target[: -len(THINKING_SUFFIX)])
            if base is not None:
                route = replace(base, public_name=target, thinking=True)
        if route is None:
            raise await self._not_found(principal, name, target)
        if not _allowed(principal, route.public_name):
            raise PermissionDenied(f"this API key may not use model {route.public_name!r}")
        return route

    async def fallbacks(self, principal: Principal, route: Route) -> tuple[Route, ...]:
        """The routes of ``route``'s fallback models this key may use, in order (unusable ones skipped)."""
        out: list[Route] = []
        for name in route.fallbacks:
            candidate = await self._lookup(principal, name)
            if candidate is not None and _allowed(principal, candidate.public_name) and candidate != route:
                out.append(candidate)
        return tuple(out)

    async def visible(self, principal: Principal) -> list[Route]:
        """The models this key may use, custom ones first, each name once."""
        seen: dict[str, Route] = {}
        if principal.allow_custom_models:
            seen.update(await self._table(principal.tenant_id))
        for name, route in (await self._table(None)).items():
            seen.setdefault(name, route)
        return [r for n, r in sorted(seen.items()) if _allowed(principal, n)]

    async def _lookup(self, principal: Principal, name: str) -> Route | None:
        if principal.allow_custom_models:
            route = (await self._table(principal.tenant_id)).get(name)
            if route is not None:
                return route
        return (await self._table(None)).get(name)

    async def _not_found(self, principal: Principal, name: str, target: str) -> GatewayError:
        """Why ``name`` (``target`` after the key's aliases) has no route, in words that lead to the fix."""
        base = target.removesuffix(THINKING_SUFFIX)
        if not principal.allow_custom_models and {target, base} & set(await self._table(principal.tenant_id)):
            return PermissionDenied(
                f"model {target!r} is a custom model of this key's tenant, and this key may not use custom "
                "models (allow them: relay keys update <key> --allow-custom-models)"
            )
        names = [r.public_name for r in await self.visible(principal)]
        close = difflib.get_close_matches(target, names, n=5, cutoff=0.4)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if target != name:
            return ModelNotFound(
                f"model {name!r} not found: this key's alias sends it to {target!r}, which is no model{hint}"
            )
        return ModelNotFound(f"model {name!r} not found{hint}")

    async def _table(self, tenant_id: str | None) -> ModelTable:
        return await self._tables.get(tenant_id)

    async def _load(self, tenant_id: str | None) -> ModelTable:
        scope = ModelRow.tenant_id.is_(None) if tenant_id is None else ModelRow.tenant_id == tenant_id
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    sa.select(ModelRow, UpstreamRow)
                    .join(UpstreamRow, ModelRow.upstream_id == UpstreamRow.id)
                    .where(scope, ModelRow.enabled.is_(True))
                )
            ).all()
            table: ModelTable = (
                _catalog_table(await provider_states(session, self._box, self._provider_env))
                if tenant_id is None
                else {}
            )
            pools = await keys_of(session, {up.id for _, up in rows})
            upstreams: dict[str, Upstream] = {}
            for model, up in rows:  # the operator's own platform models win over catalog entries
                if up.id not in upstreams:
                    upstreams[up.id] = upstream_from_rows(up, pools[up.id], self._box)
                table[model.name] = _route(model, upstreams[up.id])
        return table


def _route(model: ModelRow, upstream: Upstream) -> Route:
    return Route(
        public_name=model.name,
        model_id=model.id,
        upstream=upstream,
        upstream_model=model.upstream_model,
        price=Price(model.input_price, model.output_price, model.cache_read_price, model.cache_write_price),
        profile=merge_profile(upstream.profile, model.profile or {}, model.max_output_tokens),
        max_output_tokens=model.max_output_tokens,
        context_window=model.context_window,
        fallbacks=tuple(model.fallbacks or ()),
    )


def _catalog_table(states: list[ProviderState]) -> ModelTable:
    """Routes of the built-in catalog's models, for the providers that are on."""
    table: ModelTable = {}
    for state in states:
        if not state.enabled:
            continue
        p = state.provider
        upstream = Upstream(
            id=f"catalog:{p.name}",
            name=p.name,
            tenant_id=None,
            dialect=p.dialect,
            base_url=state.base_url,
            api_key=state.api_key,
            profile=dict(p.profile),
        )
        for m in p.models:
            route = Route(
                public_name=m.name,
                model_id=f"catalog:{p.name}:{m.name}",
                upstream=upstream,
                upstream_model=m.upstream_model,
                price=state.price(m),
                profile=merge_profile(dict(p.profile), dict(m.profile), m.max_output_tokens),
                max_output_tokens=m.max_output_tokens,
                context_window=m.context_window,
            )
            for name in m.public_names:
                table[name] = replace(route, public_name=name)
    return table


def _apply_alias(principal: Principal, name: str) -> str:
    for pattern, target in principal.aliases:
        if fnmatchcase(name, pattern):
            return target
    return name


def _allowed(principal: Principal, name: str) -> bool:
    return not principal.allowed_models or any(fnmatchcase(name, g) for g in principal.allowed_models)
