"""Members of the tenant (owners only): invite, change roles, reset a password, remove.

Invitations and resets answer POST/redirect/GET: a generated one-time password is shown once, on the page
the redirect lands on (``admin_ui.flash``), and the member chooses their own at first sign-in. The rules
(one owner per tenant, one platform admin, the password policy) are ``gateway.manage``'s; their refusals are
shown on the page. Only a platform admin may reset or remove a platform admin's account: a tenant owner
must not be able to take over the platform through a member of their tenant.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, post
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from admin_ui import flash
from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.lookups import tenant_of
from admin_ui.sessions import Admin
from admin_ui.web import page, redirect, services_of
from gateway.db.tables import User
from gateway.errors import GatewayError, InvalidRequest, NotFound, PermissionDenied
from gateway.manage import accounts, tenants
from gateway.manage.tenants import ROLES

USERS = {"access": "users"}


async def _page(
    request: Request[Any, Any, Any], form: Form, *, status: int = 200, shown: flash.Payload | None = None
) -> Response[str]:
    admin = admin_of(request)
    async with services_of(request).sessions() as db:
        users = await tenants.list_users(db, tenant_id=admin.tenant_id)
    return page(request, "members.html", status=status, users=users, form=form, roles=ROLES, shown=shown)


def _failed(exc: GatewayError) -> Form:
    failed = Form.empty(role="member")
    failed.general = exc.message[:1].upper() + exc.message[1:] + "."
    return failed


@get("/members", opt=USERS)
async def members_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _page(request, Form.empty(role="member"), shown=await flash.pop(request))


@post("/members", opt=USERS)
async def invite(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    form = await Form.read(request)
    email = form.text("email", label="Email", required=True, max_len=320)
    role = form.choice("role", ROLES, label="Role")
    password = form.value("password")
    generated = not password
    if generated:
        password = accounts.one_time_password()
    if not form.ok:
        return await _page(request, form, status=400)
    try:
        async with services_of(request).sessions.begin() as db:
            user = await tenants.create_user(
                db, tenant=await tenant_of(db, admin.tenant_id), email=email, password=password, role=role,
                actor=admin.actor.label,
            )  # fmt: skip
            user.must_change_password = generated
            created = user.email
    except GatewayError as exc:
        form.fail(exc)
        return await _page(request, form, status=400)
    shown = await flash.stash(request, {"email": created, "password": password if generated else None})
    return redirect(request, "/members", flash=shown)


async def _member(db: AsyncSession, admin: Admin, user_id: str) -> User:
    """A member of the shown tenant (never of another one)."""
    user = await db.scalar(sa.select(User).where(User.id == user_id, User.tenant_id == admin.tenant_id))
    if user is None:
        raise NotFound(f"member {user_id!r} not found")
    return user


def _may_act_on(admin: Admin, user: User, what: str) -> None:
    if user.is_platform_admin and not admin.platform_admin:
        raise PermissionDenied(f"only a platform admin can {what} a platform admin's account")


@post("/members/{user_id:str}", opt=USERS)
async def change_role(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    form = await Form.read(request)
    try:
        async with services_of(request).sessions.begin() as db:
            user = await _member(db, admin, user_id)
            await tenants.set_role(db, user, form.value("role"), actor=admin.actor.label)
    except InvalidRequest as exc:
        return await _page(request, _failed(exc), status=400)
    return redirect(request, "/members", notice="member-saved")


@post("/members/{user_id:str}/reset", opt=USERS)
async def reset_password(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
    """A new one-time password (shown once); the member's sessions end."""
    admin = admin_of(request)
    try:
        async with services_of(request).sessions.begin() as db:
            user = await _member(db, admin, user_id)
            if user.id == admin.user_id:
                raise InvalidRequest("change your own password under Your account, not here")
            _may_act_on(admin, user, "reset the password of")
            password = await accounts.reset_password(db, user, actor=admin.actor.label)
            email = user.email
    except (InvalidRequest, PermissionDenied) as exc:
        return await _page(request, _failed(exc), status=exc.status_code)
    shown = await flash.stash(request, {"email": email, "password": password, "reset": True})
    return redirect(request, "/members", flash=shown)


@post("/members/{user_id:str}/delete", opt=USERS)
async def remove_member(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    try:
        async with services_of(request).sessions.begin() as db:
            user = await _member(db, admin, user_id)
            _may_act_on(admin, user, "remove")
            await accounts.delete_user(db, user, actor=admin.actor.label)
    except (InvalidRequest, PermissionDenied) as exc:
        return await _page(request, _failed(exc), status=exc.status_code)
    if user_id == admin.user_id:  # left the tenant: this session went with the account
        return redirect(request, "/login", notice="signed-out")
    return redirect(request, "/members", notice="member-removed")


MEMBER_HANDLERS = [members_page, invite, change_role, reset_password, remove_member]
