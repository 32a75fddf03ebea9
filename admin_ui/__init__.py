"""Server-rendered admin UI (Jinja2). The gateway imports nothing from here except in ``gateway.app``.

``admin_router()`` is everything to mount: the pages under ``/admin`` (behind one guard: session, origin,
CSRF token, role), the static assets under ``/admin/static``, HTML error pages and the security headers.
"""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router

from admin_ui.guard import admin_guard, session_actor
from admin_ui.views.account import ACCOUNT_HANDLERS
from admin_ui.views.auth import AUTH_HANDLERS
from admin_ui.views.keys import KEY_HANDLERS
from admin_ui.views.members import MEMBER_HANDLERS
from admin_ui.views.models import MODEL_HANDLERS
from admin_ui.views.platform import PLATFORM_HANDLERS
from admin_ui.views.upstreams import UPSTREAM_HANDLERS
from admin_ui.views.usage import USAGE_HANDLERS
from admin_ui.views.viewing import VIEWING_HANDLERS
from admin_ui.views.webhooks import WEBHOOK_HANDLERS
from admin_ui.web import STATIC_DIR, CsrfRejected, LoginRequired, PasswordChangeRequired, SecurityHeaders, error_page
from gateway.errors import GatewayError

__all__ = ["admin_router", "session_actor"]


def admin_router() -> Router:
    handlers = [
        *AUTH_HANDLERS, *ACCOUNT_HANDLERS, *USAGE_HANDLERS, *MODEL_HANDLERS, *KEY_HANDLERS, *MEMBER_HANDLERS,
        *PLATFORM_HANDLERS, *VIEWING_HANDLERS, *UPSTREAM_HANDLERS, *WEBHOOK_HANDLERS,
    ]  # fmt: skip
    pages = Router(
        path="/",
        route_handlers=handlers,
        guards=[admin_guard],
        exception_handlers={
            LoginRequired: error_page,
            CsrfRejected: error_page,
            PasswordChangeRequired: error_page,
            GatewayError: error_page,
            HTTPException: error_page,
            Exception: error_page,
        },
    )
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        cache_control=CacheControlHeader(max_age=86400, private=True),
        include_in_schema=False,
    )
    return Router(path="/admin", route_handlers=[pages, static], middleware=[SecurityHeaders], include_in_schema=False)
