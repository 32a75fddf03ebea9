"""View as tenant: a platform admin opens any tenant's pages (dashboard, keys, models, usage, members).

Mechanism: the admin session row carries ``viewing_tenant_id`` (nullable). Starting a view sets it (a POST
from Platform → Tenants, CSRF-checked, only for platform admins); ``sessions.load`` then presents that tenant
as the session's tenant, with the role ``owner``, to every page and every role check; ending it clears the
column. Why a session column and not a URL parameter: every existing page and service call already scopes by
``admin.tenant_id``, so no page can forget the check, and nothing in a link can widen a session's reach.

Safety:
- only a platform admin can start a view (the ``platform`` access check), and ``sessions.load`` ignores the
  column unless the user is a platform admin *now*: a tenant admin can never view another tenant, even with a
  forged row or after losing the platform role;
- every start of a view is written to the viewed tenant's audit log (``tenant.view``), and everything done
  while viewing is audited with the platform admin's own ``user:<email>`` as the actor;
- every page shows a banner naming the tenant, with a way back (``base.html``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, post
from litestar.params import FromPath

from admin_ui.guard import admin_of
from admin_ui.web import redirect, services_of
from gateway.db.tables import AdminSession
from gateway.manage import tenants


@post("/platform/tenants/{tenant_id:str}/view", opt={"access": "platform"})
async def start_view(request: Request[Any, Any, Any], tenant_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    async with services_of(request).sessions.begin() as db:
        tenant = await tenants.tenant_by_id(db, tenant_id)  # 404 for an unknown tenant
        own = tenant.id == admin.home_tenant_id
        await db.execute(
            sa.update(AdminSession)
            .where(AdminSession.id == admin.session_id)
            .values(viewing_tenant_id=None if own else tenant.id)
        )
        if not own:
            await tenants.audit(db, tenant.id, admin.actor.label, "tenant.view", tenant.name, {"platform_admin": True})
    return redirect(request, "/dashboard")


@post("/view/end", opt={"access": "read"})
async def end_view(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    async with services_of(request).sessions.begin() as db:
        await db.execute(
            sa.update(AdminSession).where(AdminSession.id == admin.session_id).values(viewing_tenant_id=None)
        )
    return redirect(request, "/platform/tenants" if admin.platform_admin else "/dashboard", notice="view-ended")


VIEWING_HANDLERS = [start_view, end_view]
