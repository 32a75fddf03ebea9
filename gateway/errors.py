"""One error tree. The core raises only these; ``api/errors.py`` renders them in the door's dialect.

::

    GatewayError (500 api_error)
    ├── InvalidRequest (400 invalid_request_error)
    │   └── RequestTooLarge (413 request_too_large)
    ├── AuthenticationFailed (401 authentication_error)
    ├── PermissionDenied (403 permission_error)
    ├── NotFound (404 not_found_error)
    │   └── ModelNotFound (404, OpenAI's model_not_found)
    ├── Conflict (409 invalid_request_error)
    ├── BudgetExceeded (402 billing_error)
    ├── RateLimited (429 rate_limit_error)
    ├── UpstreamError (status and message taken from the upstream)
    │   ├── UpstreamUnavailable (502: connect error, bad response)
    │   └── UpstreamTimeout (504)
    └── ServiceUnavailable (503)

Each class has ``status_code`` and a stable ``code``; ``should_retry`` says whether a client
retrying the same request could succeed (sent as ``x-should-retry``; Claude Code retries
ten times otherwise).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationFailed",
    "BudgetExceeded",
    "Conflict",
    "GatewayError",
    "InvalidRequest",
    "ModelNotFound",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestTooLarge",
    "ServiceUnavailable",
    "UpstreamBlocked",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class GatewayError(Exception):
    status_code: int = 500
    code: str = "internal_error"
    should_retry: bool | None = None
    envelope: dict[str, Any] | None = None
    """A complete error body in the door's dialect, when the raiser already knows it."""

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    status_code = 400
    code = "invalid_request"
    should_retry = False

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, param: str | None = None) -> None:
        super().__init__(message, headers=headers)
        self.param = param
        """The offending field's path (``messages.0.content``), sent as the OpenAI error's ``param``."""


class RequestTooLarge(InvalidRequest):
    status_code = 413
    code = "request_too_large"


class AuthenticationFailed(GatewayError):
    status_code = 401
    code = "invalid_api_key"
    should_retry = False


class PermissionDenied(GatewayError):
    status_code = 403
    code = "permission_denied"
    should_retry = False


class NotFound(GatewayError):
    """Something named in the request does not exist (a batch, a key, a page, ``/metrics`` switched off)."""

    status_code = 404
    code = "not_found"
    should_retry = False


class ModelNotFound(NotFound):
    """The model asked for is not one this key can see: the only 404 OpenAI clients get as ``model_not_found``
    (SDKs raise "model not found" on that code, which must not send users after a missing page)."""

    code = "model_not_found"


class Conflict(GatewayError):
    status_code = 409
    code = "conflict"
    should_retry = False


class RateLimited(GatewayError):
    status_code = 429
    code = "rate_limited"


class BudgetExceeded(GatewayError):
    """No money left in the key's or tenant's budget; retrying cannot help until it is raised or resets."""

    status_code = 402
    code = "budget_exceeded"
    should_retry = False


class ServiceUnavailable(GatewayError):
    status_code = 503
    code = "service_unavailable"


class UpstreamError(GatewayError):
    """The upstream answered with an error; its status is kept (a 429 stays a 429)."""

    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 502,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.status_code = status_code
        self.error_type = error_type
        self.key_refused = False
        """The upstream refused our credential (401/403/407): another key of its pool may be accepted."""


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=502)


class UpstreamBlocked(UpstreamError):
    """The SSRF guard refused the upstream's address: a setting to change, not a failure to retry."""

    code = "upstream_address_not_allowed"
    should_retry = False

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=502)


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=504)
