"""Who is calling, what they may do, and on whose objects: the management API's guard and dependencies.

``resolve_actor`` is the one place a caller becomes an ``Actor``: a bearer management token today;
the admin UI's session adds its branch there, producing the same ``Actor``. The guard then checks the
role against what the route needs (handler ``opt["access"]``; otherwise reads need ``read`` and writes
``manage``), before the body is even parsed.

Tenant-owned routes act on the actor's own tenant. A platform actor names one with ``?tenant_id=``;
a tenant actor naming another tenant gets the same 404 as for a tenant that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.tables import Tenant
from gateway.errors import InvalidRequest, NotFound, PermissionDenied
from gateway.manage import tenants, tokens
from gateway.manage.tokens import Access, Actor
from gateway.services import Services

Db = NamedDependency[AsyncSession]
"""The request's unit of work (``provide_db``)."""
CurrentActor = NamedDependency[Actor]
Svc = NamedDependency[Services]
Owner = NamedDependency[Tenant | None]


def owner_id(owner: Tenant | None) -> str | None:
    """The tenant id an owner-scoped query filters on; None is the platform's own objects."""
    return owner.id if owner else None


"""Whose upstreams and models a route acts on: a tenant, or ``None`` for the platform's built-in ones."""
OwnTenant = NamedDependency[Tenant]
TenantQuery = Annotated[
    str | None, QueryParameter(description="platform tokens: the tenant to act on (tenant tokens: their own)")
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_AFTER_COMMIT = "relay.after_commit"


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    services: Services = connection.app.state.services
    return services


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


async def resolve_actor(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    """The caller as an ``Actor``, or 401: a bearer management token, else an admin UI session cookie.

    The session branch is ``app.state.session_actor``, installed by ``gateway.app`` from ``admin_ui`` (the
    gateway imports nothing from the UI); it is only consulted without an ``Authorization`` header, and it
    refuses (403) a state-changing call that lacks the session's ``X-CSRF-Token`` header.
    """
    services = services_of(connection)
    session_actor: Callable[[ASGIConnection[Any, Any, Any, Any]], Awaitable[Actor | None]] | None = (
        connection.app.state.get("session_actor")
    )
    if session_actor is not None and "authorization" not in connection.headers:
        actor = await session_actor(connection)
        if actor is not None:
            return actor
    async with services.sessions.begin() as session:
        return await tokens.authenticate_token(
            session, bearer_token(connection), secret_key=services.settings.secret_key
        )


async def require_access(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard of every management route: authenticate, then check the role server-side (403)."""
    actor = await resolve_actor(connection)
    connection.state.actor = actor
    method = connection.scope.get("method", "GET")
    need: Access = handler.opt.get("access") or ("read" if method in SAFE_METHODS else "manage")
    if not actor.allows(need):
        raise PermissionDenied(f"role {actor.role!r} may not do this ({_WHAT[need]} needed)")


_WHAT: dict[str, str] = {
    "read": "a member token",
    "manage": "an admin or owner token",
    "users": "an owner token",
    "platform-read": "a platform token",
    "platform": "a platform admin token",
}


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    actor: Actor = request.state.actor
    return actor


def provide_services(request: Request[Any, Any, Any]) -> Services:
    return services_of(request)


async def provide_db(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed when the handler succeeds, rolled back when it raises."""
    async with services_of(request).sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        for hook in session.info.get(_AFTER_COMMIT, ()):
            hook()


def after_commit(db: AsyncSession, hook: Callable[[], None]) -> None:
    """Run ``hook`` once this request's changes are committed (e.g. drop this worker's caches)."""
    db.info.setdefault(_AFTER_COMMIT, []).append(hook)


async def provide_tenant(actor: CurrentActor, db: Db, tenant_id: TenantQuery = None) -> Tenant:
    """The tenant a tenant-owned route acts on: the actor's own, or for a platform actor ``?tenant_id=``."""
    if actor.tenant_id is None:
        if not tenant_id:
            raise InvalidRequest(
                "tenant_id: a platform token must name the tenant (?tenant_id=…); "
                "built-in upstreams and models live under /api/v1/platform/"
            )
        return await tenants.tenant_by_id(db, tenant_id)
    if tenant_id and tenant_id != actor.tenant_id:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return await tenants.tenant_by_id(db, actor.tenant_id)


async def provide_tenant_owner(actor: CurrentActor, db: Db, tenant_id: TenantQuery = None) -> Tenant | None:
    return await provide_tenant(actor, db, tenant_id)


def provide_platform_owner(actor: CurrentActor) -> Tenant | None:
    """Built-in upstreams and models belong to no tenant: platform actors only."""
    if not actor.platform:
        raise PermissionDenied("built-in upstreams and models are managed with a platform token")
    return None
