"""Sign in, sign out, and the first-run setup (a tenant and its owner, a platform admin)."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from litestar import Request, Response, get, post
from litestar.params import FromQuery

from admin_ui import sessions, throttle
from admin_ui.forms import Form
from admin_ui.guard import (
    admin_of,
    clear_session_cookie,
    client_ip,
    pre_session_token,
    session_cookie,
    set_pre_cookie,
    set_session_cookie,
)
from admin_ui.web import LoginRequired, base_path, page, redirect, services_of
from gateway.auth import hash_password, verify_password
from gateway.db.tables import User
from gateway.errors import GatewayError
from gateway.manage import tenants
from gateway.manage.tenants import MIN_PASSWORD_LENGTH

BAD_LOGIN = "Email or password is incorrect."
THROTTLED = "Too many failed sign-ins for this account from your address. Wait a while, then try again."
_POLICY = PasswordHasher()  # the parameters gateway.auth hashes with: older, weaker hashes are upgraded at sign-in
PUBLIC = {"public": True}


def _next(request: Request[Any, Any, Any], value: str) -> str | None:
    """Only a path inside the admin UI: never another site (``//evil``) nor a scheme."""
    base = base_path(request)
    if value.startswith(base + "/") and not value.startswith("//") and "\\" not in value and "://" not in value:
        return value
    return None


async def _no_users(request: Request[Any, Any, Any]) -> bool:
    async with services_of(request).sessions() as db:
        return not await db.scalar(sa.select(sa.func.count()).select_from(User))


@get("/", name="admin:index")
async def index(request: Request[Any, Any, Any]) -> Response[Any]:
    return redirect(request, "/dashboard")


def _login_page(request: Request[Any, Any, Any], form: Form, *, status: int = 200) -> Response[str]:
    field, cookie = pre_session_token(request)
    response = page(request, "login.html", status=status, form=form, csrf=field)
    set_pre_cookie(request, response, cookie)
    return response


@get("/login", opt=PUBLIC)
async def login_form(request: Request[Any, Any, Any], next: FromQuery[str] = "") -> Response[Any]:
    if await _no_users(request):
        return redirect(request, "/setup")
    if request.state.admin is not None:
        return redirect(request, "/dashboard")
    return _login_page(request, Form.empty(next=_next(request, next)))


async def _admit(request: Request[Any, Any, Any], email: str, ip: str) -> tuple[int, list[User]] | None:
    """The throttle (``admin_ui.throttle``): None when refused; else the provisional failure's id and the accounts
    of ``email``, after the account's slow-down."""
    services = services_of(request)
    async with services.sessions.begin() as db:
        seen = await throttle.failures(db, email=email, ip=ip)
        if seen.refused():
            return None  # refused unchecked, and not counted: the window still ends
        attempt = await throttle.record_failure(db, email=email, ip=ip)  # provisional, seen by parallel guesses
    async with services.sessions() as db:
        if (await throttle.failures(db, email=email, ip=ip)).refused(slack=1):
            return None
        # One address may have an account in several tenants: the password says which one signs in.
        accounts = list(await db.scalars(sa.select(User).where(User.email == email).order_by(User.created_at)))
    if seen.delay_s:
        await asyncio.sleep(seen.delay_s)  # many failures from everywhere: slower, for everyone, never locked
    return attempt, accounts


@post("/login", opt=PUBLIC)
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await Form.read(request)
    email = form.value("email").strip().lower()[:320]
    password = form.value("password")
    ip = client_ip(request)
    refused = Form.empty(email=email, next=form.value("next"))
    admitted = await _admit(request, email, ip)
    if admitted is None:
        refused.general = THROTTLED
        return _login_page(request, refused, status=429)
    attempt, accounts = admitted
    user = await _matching(accounts, password)
    if user is None:
        refused.general = BAD_LOGIN  # the same answer for an unknown email and a wrong password
        return _login_page(request, refused, status=401)
    async with services_of(request).sessions.begin() as db:
        await throttle.forget_attempt(db, attempt)
        user = await db.get(User, user.id)
        if user is None:
            raise LoginRequired
        if _POLICY.check_needs_rehash(user.password_hash):
            user.password_hash = await hash_password(password)
        await sessions.destroy(db, session_cookie(request))  # a new id at every sign-in: no fixation
        await sessions.prune(db)
        await throttle.prune(db)
        raw, _ = await sessions.create(db, user, ip=ip)
        must_change = user.must_change_password
        await tenants.audit(db, user.tenant_id, f"user:{user.email}", "session.login", user.email, {"ip": ip})
    response: Response[Any] = redirect(request, "/dashboard")
    target = _next(request, form.value("next"))
    if must_change:
        response = redirect(request, "/account/password")  # a one-time password: choose one before anything else
    elif target:
        response = redirect(request, target[len(base_path(request)) :])
    set_session_cookie(request, response, raw)
    return response


async def _matching(accounts: list[User], password: str) -> User | None:
    """The first account whose password matches; an unknown email still costs one hash (no timing tell)."""
    if not accounts:
        await verify_password(None, password)
        return None
    for user in accounts:
        if await verify_password(user.password_hash, password):
            return user
    return None


@post("/logout", opt={"access": "read", "password_change": True})
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    admin = admin_of(request)
    async with services_of(request).sessions.begin() as db:
        await sessions.destroy(db, session_cookie(request))
        await tenants.audit(db, admin.home_tenant_id, f"user:{admin.email}", "session.logout", admin.email)
    response: Response[Any] = redirect(request, "/login", notice="signed-out")
    clear_session_cookie(request, response)
    return response


def _setup_page(request: Request[Any, Any, Any], form: Form, *, status: int = 200) -> Response[str]:
    field, cookie = pre_session_token(request)
    response = page(request, "setup.html", status=status, form=form, csrf=field)
    set_pre_cookie(request, response, cookie)
    return response


@get("/setup", opt=PUBLIC)
async def setup_form(request: Request[Any, Any, Any]) -> Response[Any]:
    if not await _no_users(request):
        return redirect(request, "/login")
    return _setup_page(request, Form.empty(tenant_name="default"))


@post("/setup", opt=PUBLIC)
async def setup(request: Request[Any, Any, Any]) -> Response[Any]:
    """Only while no user exists at all (``relay serve`` normally creates the first admin itself)."""
    form = await Form.read(request)
    tenant_name = form.text("tenant_name", label="Organisation name", required=True)
    email = form.text("email", label="Email", required=True, max_len=320)
    password = form.value("password")
    if len(password) < MIN_PASSWORD_LENGTH:
        form.errors["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    elif password != form.value("password2"):
        form.errors["password2"] = "The two passwords differ."
    if not form.ok:
        return _setup_page(request, form, status=400)
    services = services_of(request)
    async with services.sessions.begin() as db:
        if db.get_bind().dialect.name == "postgresql":  # one setup at a time across workers
            await db.execute(sa.text("SELECT pg_advisory_xact_lock(7262657901)"))
        if await db.scalar(sa.select(sa.func.count()).select_from(User)):
            return redirect(request, "/login")
        try:
            tenant = await tenants.create_tenant(db, tenant_name, actor="admin-ui setup")
            user = await tenants.create_user(
                db, tenant=tenant, email=email, password=password, role="owner", platform_admin=True,
                actor="admin-ui setup",
            )  # fmt: skip
        except GatewayError as exc:
            form.fail(exc)
            return _setup_page(request, form, status=400)
        raw, _ = await sessions.create(db, user, ip=client_ip(request))
    response: Response[Any] = redirect(request, "/dashboard")
    set_session_cookie(request, response, raw)
    return response


AUTH_HANDLERS = [index, login_form, login, logout, setup_form, setup]
