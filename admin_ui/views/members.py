"""Members of the tenant (owners only): invite with an initial password, change roles."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, post
from litestar.params import FromPath

from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.lookups import tenant_of
from admin_ui.web import page, redirect, services_of
from gateway.db.tables import User
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.manage import tenants
from gateway.manage.tenants import MIN_PASSWORD_LENGTH, ROLES

USERS = {"access": "users"}


def generated_password() -> str:
    return secrets.token_urlsafe(12)


async def _page(request: Request[Any, Any, Any], form: Form, *, status: int = 200, **more: Any) -> Response[str]:
    admin = admin_of(request)
    async with services_of(request).sessions() as db:
        users = await tenants.list_users(db, tenant_id=admin.tenant_id)
    return page(request, "members.html", status=status, users=users, form=form, roles=ROLES, **more)


@get("/members", opt=USERS)
async def members_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _page(request, Form.empty(role="member"))


@post("/members", opt=USERS)
async def invite(request: Request[Any, Any, Any]) -> Response[str]:
    admin = admin_of(request)
    form = await Form.read(request)
    email = form.text("email", label="Email", required=True, max_len=320)
    role = form.choice("role", ROLES, label="Role")
    password = form.value("password")
    generated = not password
    if generated:
        password = generated_password()
    elif len(password) < MIN_PASSWORD_LENGTH:
        form.errors["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters, or leave empty to generate one."
    if not form.ok:
        return await _page(request, form, status=400)
    try:
        async with services_of(request).sessions.begin() as db:
            user = await tenants.create_user(
                db, tenant=await tenant_of(db, admin.tenant_id), email=email, password=password, role=role,
                actor=admin.actor.label,
            )  # fmt: skip
            created = user.email
    except GatewayError as exc:
        form.fail(exc)
        return await _page(request, form, status=400)
    shown = password if generated else None
    return await _page(request, Form.empty(role="member"), status=201, invited=created, password=shown)


@post("/members/{user_id:str}", opt=USERS)
async def change_role(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
    admin = admin_of(request)
    form = await Form.read(request)
    try:
        async with services_of(request).sessions.begin() as db:
            user = await db.scalar(sa.select(User).where(User.id == user_id, User.tenant_id == admin.tenant_id))
            if user is None:
                raise NotFound(f"member {user_id!r} not found")
            await tenants.set_role(db, user, form.value("role"), actor=admin.actor.label)
    except InvalidRequest as exc:
        failed = Form.empty(role="member")
        failed.general = exc.message
        return await _page(request, failed, status=400)
    return redirect(request, "/members", notice="member-saved")


MEMBER_HANDLERS = [members_page, invite, change_role]
