"""Rendering: the Jinja2 environment (autoescape on everywhere), pages, redirects, security headers, errors."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.services import Services

log = logging.getLogger("relay.admin")
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
NOTICES = {
    "model-saved": "Model saved.",
    "model-deleted": "Model deleted.",
    "model-tested": "Connection test finished; results below.",
    "key-saved": "Key settings saved.",
    "key-revoked": "Key revoked. Requests with it now fail.",
    "member-saved": "Member updated.",
    "tenant-created": "Tenant created.",
    "provider-saved": "Provider updated.",
    "price-saved": "Price override saved.",
    "signed-out": "You are signed out.",
    "password-changed": "Password changed. Your other sessions were signed out.",
    "signed-out-others": "Your other sessions were signed out.",
    "member-removed": "Member removed. Their sessions ended.",
    "view-ended": "Back to your own tenant.",
    "session-expired": "Your session ended. Please sign in again.",
    "upstream-saved": "Upstream saved. Requests use it within seconds.",
    "upstream-key": "Key stored. Only its last four characters are shown from now on.",
    "upstream-key-removed": "Stored key removed.",
    "upstream-deleted": "Upstream deleted.",
}


class SecurityHeaders:
    """ASGI middleware of the admin router: every admin response, errors included, gets the headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def money(micro: int | float | None) -> str:
    usd = (micro or 0) / 1_000_000
    if usd == 0 or usd >= 1:
        return f"${usd:,.2f}"
    return f"${usd:.6f}".rstrip("0") if usd < 0.01 else f"${usd:.4f}"


def _number(value: int | float | None) -> str:
    value = value or 0
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:,.0f}" if isinstance(value, int) or float(value).is_integer() else f"{value:,.2f}"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _price(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if round(value, 2) == value else f"${value:,.4g}"


ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name; user data is never marked safe
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(money=money, number=_number, when=_when, price=_price)
ENV.globals["asset_version"] = _asset_version()


def services_of(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


def base_path(request: Request[Any, Any, Any]) -> str:
    """``/admin`` under the gateway's root path."""
    return services_of(request).settings.root_path + "/admin"


def gateway_url(request: Request[Any, Any, Any]) -> str:
    """The gateway's public base URL as this browser reaches it (scheme, host, root path)."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}{services_of(request).settings.root_path}"


def page(request: Request[Any, Any, Any], template: str, *, status: int = 200, **context: Any) -> Response[str]:
    """A rendered HTML page. ``ctx`` (the signed-in admin, or None) and URL helpers are always available."""
    base = base_path(request)
    ctx = getattr(request.state, "admin", None)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = ENV.get_template(template).render(
        ctx=ctx,
        base=base,
        static=f"{base}/static",
        path=request.url.path,
        notice=notice,
        **context,
    )
    return Response(content=html, status_code=status, media_type="text/html")  # Litestar adds "; charset=utf-8"


def redirect(request: Request[Any, Any, Any], to: str, **query: str) -> Redirect:
    """303 to an admin path (``to`` is relative to ``/admin``), with a query string."""
    target = base_path(request) + to
    if query:
        target += "?" + urlencode(query)
    return Redirect(target, status_code=303)


def url_with(path: str, params: Mapping[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return path + ("?" + urlencode(kept) if kept else "")


class LoginRequired(Exception):
    """No valid session: go to the sign-in page (then come back)."""


class CsrfRejected(Exception):
    """A state-changing request without a valid CSRF token or from another origin."""


class PasswordChangeRequired(Exception):
    """The account signed in with a one-time password: it chooses its own before any other page."""


TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Method not allowed", 429: "Slow down"}


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Admin errors as HTML (the doors answer in their dialects; the admin UI answers in pages)."""
    if isinstance(exc, LoginRequired):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.method != "GET":
            return redirect(request, "/login", notice="session-expired")
        return redirect(request, "/login", next=target)
    if isinstance(exc, PasswordChangeRequired):
        return redirect(request, "/account/password")
    if isinstance(exc, CsrfRejected):
        status, message = 403, "This form expired or came from another site. Go back, reload the page and try again."
    elif isinstance(exc, GatewayError):
        status, message = exc.status_code, exc.message
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, exc.detail
    else:
        log.exception("admin UI error on %s %s", request.method, request.url.path)
        status, message = 500, "Something went wrong on our side. The error was logged."
    title = TITLES.get(status, "Error" if status < 500 else "Server error")
    return page(request, "error.html", status=status, title=title, message=message, status_code=status)
