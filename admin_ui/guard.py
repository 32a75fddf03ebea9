"""The one gate of every admin page: session, origin, CSRF token and role, checked server-side.

Order, for each request:
1. the session cookie is looked up (``sessions.load``: expired or unknown ids count as signed out);
2. a state-changing request (any method but GET/HEAD/OPTIONS) must come from this origin: ``Sec-Fetch-Site``
   (when sent) is ``same-origin``, and ``Origin`` (or, without it, ``Referer``) names this host — else 403;
3. signed-out requests to non-public pages go to the sign-in page;
4. a state-changing request must carry the CSRF token: the session's synchronizer token, or on the public
   sign-in/setup forms a signed double-submit token (``sessions.form_token``) — else 403;
5. an account with a one-time password (``must_change_password``) is sent to the change-password page from
   every page but the few marked ``opt["password_change"]`` (that page, sign-out);
6. the handler's ``opt["access"]`` (default: ``read`` for GET, ``manage`` for changes) is checked against the
   user's role (403).

``X-Forwarded-Proto`` is not read here: ``request.url.scheme`` is what uvicorn reports, and uvicorn applies
``X-Forwarded-Proto``/``X-Forwarded-For`` only from the proxies in ``RELAY_TRUSTED_PROXIES`` (default: none,
``cli/uvicorn_guard.proxy_options``). Behind a TLS-terminating proxy, list it there so cookies get ``Secure``.
"""

from __future__ import annotations

import hmac
from typing import Any, cast
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from admin_ui import sessions
from admin_ui.sessions import Admin
from admin_ui.web import CsrfRejected, LoginRequired, PasswordChangeRequired, base_path, services_of
from gateway.errors import PermissionDenied
from gateway.manage.tokens import Access, Actor
from gateway.security import derive_key

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRE_COOKIE_AGE = 2 * 3600


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def session_cookie(request: Request[Any, Any, Any]) -> str | None:
    return request.cookies.get(sessions.SECURE_COOKIE) or request.cookies.get(sessions.COOKIE)


def form_secret(request: Request[Any, Any, Any]) -> bytes:
    return derive_key(services_of(request).settings.secret_key, "admin-ui-login-form")


def same_origin(request: Request[Any, Any, Any]) -> bool:
    """The request was sent by a page of this gateway (OWASP CSRF: verify the source origin)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    source = request.headers.get("origin")
    if source is None:
        source = request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    if request.url.scheme == "https" and parts.scheme != "https":
        return False
    host = request.headers.get("host", "").lower()
    return bool(host) and parts.netloc.lower() == host


def admin_of(request: Request[Any, Any, Any]) -> Admin:
    """The signed-in admin of a non-public page (the guard has made sure there is one)."""
    admin: Admin = request.state.admin
    return admin


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    request = cast("Request[Any, Any, Any]", connection)
    services = services_of(request)
    admin: Admin | None = None
    raw = session_cookie(request)
    if raw:
        async with services.sessions.begin() as db:
            admin = await sessions.load(db, raw)
    request.state.admin = admin
    public = bool(handler.opt.get("public"))
    unsafe = request.method not in SAFE_METHODS
    if unsafe and not same_origin(request):
        raise CsrfRejected
    if not public and admin is None:
        raise LoginRequired
    if unsafe:
        field = (await request.form()).get("csrf")
        token = field if isinstance(field, str) else ""
        if public:
            valid = sessions.check_form_token(form_secret(request), request.cookies.get(sessions.PRE_COOKIE), token)
        else:
            assert admin is not None
            valid = hmac.compare_digest(admin.csrf.encode(), token.encode())
        if not valid:
            raise CsrfRejected
    if admin is not None and not public and admin.must_change_password and not handler.opt.get("password_change"):
        raise PasswordChangeRequired
    if admin is not None and not public:
        need: Access = handler.opt.get("access") or ("manage" if unsafe else "read")
        if not admin.allows(need):
            raise PermissionDenied(_DENIED[need])


_DENIED: dict[str, str] = {
    "read": "You need to be a member of this tenant.",
    "manage": "Only admins and owners of this tenant can change this. Members have read-only access.",
    "users": "Only owners of this tenant can manage members.",
    "platform-read": "Only platform admins can open platform pages.",
    "platform": "Only platform admins can open platform pages.",
}


def _cookie_path(request: Request[Any, Any, Any]) -> str:
    """The gateway's root: the management API (``/api/v1``) accepts the session too (see ``session_actor``)."""
    return services_of(request).settings.root_path + "/"


def set_session_cookie(request: Request[Any, Any, Any], response: Response[Any], raw: str) -> None:
    """``HttpOnly; SameSite=Lax``; over https ``Secure`` with the ``__Host-`` prefix. No Max-Age: the
    browser forgets it when closed, and the server enforces the idle and absolute timeouts anyway."""
    if request.url.scheme == "https":
        response.set_cookie(sessions.SECURE_COOKIE, raw, path="/", secure=True, httponly=True, samesite="lax")
    else:
        response.set_cookie(sessions.COOKIE, raw, path=_cookie_path(request), httponly=True, samesite="lax")
    response.delete_cookie(sessions.PRE_COOKIE, path=base_path(request))


def clear_session_cookie(request: Request[Any, Any, Any], response: Response[Any]) -> None:
    response.delete_cookie(sessions.SECURE_COOKIE, path="/")
    response.delete_cookie(sessions.COOKIE, path=_cookie_path(request))


async def session_actor(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    """The management API's cookie branch (installed by ``gateway.app`` as ``app.state.session_actor``).

    A signed-in admin UI user becomes an ``Actor``: a platform admin acts as the platform (naming tenants
    with ``?tenant_id=``), anyone else as their role in their own tenant. A state-changing call must carry the
    session's CSRF token in ``X-CSRF-Token`` (no cross-site form can set a header; there is no CORS) and pass
    the same-origin check; else 403. None when there is no live session (the caller then gets the 401).
    """
    request = cast("Request[Any, Any, Any]", connection)
    raw = session_cookie(request)
    if not raw:
        return None
    async with services_of(request).sessions.begin() as db:
        admin = await sessions.load(db, raw)
    if admin is None:
        return None
    if admin.must_change_password:
        raise PermissionDenied("this account signed in with a one-time password: choose a new one in the admin UI")
    if request.method not in SAFE_METHODS:
        token = request.headers.get("x-csrf-token", "")
        if not same_origin(request) or not hmac.compare_digest(admin.csrf.encode(), token.encode()):
            raise PermissionDenied("a session-authenticated change needs the X-CSRF-Token header of that session")
    return admin.platform_actor if admin.platform_admin else admin.actor


def pre_session_token(request: Request[Any, Any, Any]) -> tuple[str, str | None]:
    """(hidden form field, cookie to set or None) for the sign-in and setup forms."""
    current = request.cookies.get(sessions.PRE_COOKIE)
    if current is not None and sessions.well_formed(current):
        return sessions.form_token(form_secret(request), current), None
    cookie = sessions.new_token()
    return sessions.form_token(form_secret(request), cookie), cookie


def set_pre_cookie(request: Request[Any, Any, Any], response: Response[Any], cookie: str | None) -> None:
    if cookie is not None:
        response.set_cookie(
            sessions.PRE_COOKIE,
            cookie,
            max_age=PRE_COOKIE_AGE,
            path=base_path(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
