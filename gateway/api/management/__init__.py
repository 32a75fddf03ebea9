"""The JSON management API under ``/api/v1/``: the same services as the CLI and the admin UI.

Authenticated by a management token (``Authorization: Bearer rlm-…``, from ``relay tokens create``);
roles checked server-side by one guard (``access.require_access``); one database transaction per
request; errors as ``{"error": {"message", "type", "param", "code"}}``. The OpenAPI schema is
served at ``/api/v1/schema`` (``/api/v1/schema/openapi.json``).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy.exc import IntegrityError

from gateway.api.management.access import provide_actor, provide_db, provide_services, require_access
from gateway.api.management.catalog import catalog
from gateway.api.management.errors import management_error_handler
from gateway.api.management.keys import KeyController
from gateway.api.management.models import ModelController, PlatformModelController
from gateway.api.management.tenants import TenantController, UserController, me
from gateway.api.management.upstream_keys import PlatformUpstreamKeyController, UpstreamKeyController
from gateway.api.management.upstreams import PlatformUpstreamController, UpstreamController
from gateway.api.management.usage import USAGE_HANDLERS
from gateway.api.management.webhooks import PlatformWebhookController, WebhookController
from gateway.errors import GatewayError

__all__ = ["MANAGEMENT_API", "openapi_config"]

MANAGEMENT_API = Router(
    path="/api/v1",
    route_handlers=[
        UpstreamController,
        PlatformUpstreamController,
        UpstreamKeyController,
        PlatformUpstreamKeyController,
        ModelController,
        PlatformModelController,
        KeyController,
        UserController,
        TenantController,
        me,
        catalog,
        *USAGE_HANDLERS,
        WebhookController,
        PlatformWebhookController,
    ],
    guards=[require_access],
    dependencies={
        "db": Provide(provide_db),
        "actor": Provide(provide_actor, sync_to_thread=False),
        "services": Provide(provide_services, sync_to_thread=False),
    },
    exception_handlers={
        GatewayError: management_error_handler,
        HTTPException: management_error_handler,
        IntegrityError: management_error_handler,
    },
    include_in_schema=True,
    security=[{"managementToken": []}],
)


def openapi_config(root_path: str = "") -> OpenAPIConfig:
    """The OpenAPI document of the management API (the doors are left out of it), at ``/api/v1/schema``."""
    return OpenAPIConfig(
        title="Relay management API",
        version="1",
        path=f"{root_path}/api/v1/schema",
        components=Components(
            security_schemes={
                "managementToken": SecurityScheme(
                    type="http", scheme="bearer", description="rlm-… from `relay tokens create`"
                )
            }
        ),
    )
