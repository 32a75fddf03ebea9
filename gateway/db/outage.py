"""Whether the database is down, told once per outage.

While it is down, the hot path serves keys and model tables from its caches for up to
``RELAY_STALE_IF_ERROR`` seconds past their expiry (``cache.TTLCache``), and a request that needs
the database answers 503 with ``retry-after`` in the door's dialect. One warning when the outage
is first seen and one when it ends, instead of a traceback per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from gateway.errors import GatewayError, ServiceUnavailable

log = logging.getLogger("relay")
RETRY_AFTER_S = 5


def is_outage(exc: BaseException) -> bool:
    """An error that says the database cannot be reached (not that a query was wrong)."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    should_retry = True

    def __init__(self) -> None:
        super().__init__(
            "the gateway cannot reach its database right now; retry shortly",
            headers={"retry-after": str(RETRY_AFTER_S)},
        )


class Outage:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.since: float | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def explains(self, exc: BaseException) -> bool:
        return is_outage(exc)

    def failed(self, exc: BaseException) -> GatewayError:
        """Note a failure (a warning only at the start of an outage); the error to answer with."""
        if self.since is None:
            self.since = self._clock()
            log.warning("database unreachable (%s): serving cached keys and models; others get 503", exc)
        return DatabaseUnavailable()

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("database reachable again after %.1f s", self._clock() - self.since)
            self.since = None
