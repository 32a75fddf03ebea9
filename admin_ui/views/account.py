"""The signed-in user's own account: change password, see their sessions, sign out everywhere else.

An account holding a one-time password (first run, a reset) sees only ``/account/password`` until it has
chosen its own (``guard.admin_guard``); afterwards it lands on the dashboard.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get, post

from admin_ui.forms import Form
from admin_ui.guard import admin_of
from admin_ui.web import page, redirect, services_of
from gateway.db.tables import AdminSession, User
from gateway.errors import InvalidRequest, NotFound
from gateway.manage import accounts, tenants

ANYONE = {"access": "read"}
FORCED = {"access": "read", "password_change": True}


async def _sessions(request: Request[Any, Any, Any]) -> list[AdminSession]:
    admin = admin_of(request)
    async with services_of(request).sessions() as db:
        query = sa.select(AdminSession).where(AdminSession.user_id == admin.user_id)
        return list(await db.scalars(query.order_by(AdminSession.last_seen_at.desc())))


async def _account_page(request: Request[Any, Any, Any], form: Form, *, status: int = 200) -> Response[str]:
    return page(request, "account.html", status=status, form=form, sessions=await _sessions(request))


def _password_page(request: Request[Any, Any, Any], form: Form, *, status: int = 200) -> Response[str]:
    return page(request, "password.html", status=status, form=form)


@get("/account", opt=ANYONE)
async def account_page(request: Request[Any, Any, Any]) -> Response[str]:
    return await _account_page(request, Form.empty())


@get("/account/password", opt=FORCED)
async def password_form(request: Request[Any, Any, Any]) -> Response[Any]:
    if not admin_of(request).must_change_password:
        return redirect(request, "/account")
    return _password_page(request, Form.empty())


def _read(form: Form) -> tuple[str, str]:
    current, new = form.value("current"), form.value("password")
    if not current:
        form.errors["current"] = "Type your current password."
    if new != form.value("password2"):
        form.errors["password2"] = "The two new passwords differ."
    return current, new


@post("/account/password", opt=FORCED)
async def change_password(request: Request[Any, Any, Any]) -> Response[Any]:
    """The user's own change (current password checked); every other session of the account ends."""
    admin = admin_of(request)
    form = await Form.read(request)
    current, new = _read(form)
    if form.ok:
        try:
            async with services_of(request).sessions.begin() as db:
                user = await db.get(User, admin.user_id)
                if user is None:
                    raise NotFound("this account no longer exists")
                await accounts.change_password(
                    db, user, current, new, actor=admin.actor.label, keep_session=admin.session_id
                )
        except InvalidRequest as exc:
            message = exc.message[:1].upper() + exc.message[1:] + "."
            form.errors["current" if "current password" in exc.message else "password"] = message
    if not form.ok:
        if admin.must_change_password:
            return _password_page(request, form, status=400)
        return await _account_page(request, form, status=400)
    if admin.must_change_password:
        return redirect(request, "/dashboard", notice="password-changed")
    return redirect(request, "/account", notice="password-changed")


@post("/account/sessions/others", opt=ANYONE)
async def end_other_sessions(request: Request[Any, Any, Any]) -> Response[Any]:
    """Sign out everywhere else: every session of this account but this one."""
    admin = admin_of(request)
    async with services_of(request).sessions.begin() as db:
        ended = await accounts.sign_out_everywhere(db, admin.user_id, keep_session=admin.session_id)
        await tenants.audit(
            db, admin.home_tenant_id, admin.actor.label, "session.logout_others", admin.email, {"ended": ended}
        )
    return redirect(request, "/account", notice="signed-out-others")


ACCOUNT_HANDLERS = [account_page, password_form, change_password, end_other_sessions]
