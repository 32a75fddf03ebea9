"""The drain after SIGTERM, as the relay sees it: when open streams must end, with an error event, at the latest.

uvicorn stops accepting, lets open requests run for ``timeout_graceful_shutdown`` seconds, then
cancels them, which would cut a stream with no error event. The server's protocol
(``cli/uvicorn_guard.py``) calls ``begin`` when the drain starts; from then on every stream's wait
for its upstream is bounded by ``deadline``, one second before the grace runs out, so a stream
still open then ends with an ``overloaded_error`` event in its client's dialect (clients retry it)
and its usage is recorded. A stream already waiting when the drain began wakes within its
keep-alive interval, so this holds whenever the grace exceeds ``RELAY_KEEPALIVE_INTERVAL``.
"""

from __future__ import annotations

import math
import time

DRAIN_STATE = "relay.drain"
"""Where the ASGI lifespan state carries the ``Drain`` to the server's protocol."""
MARGIN_S = 1.0


class Drain:
    __slots__ = ("deadline",)

    def __init__(self) -> None:
        self.deadline = math.inf
        """``time.monotonic()`` instant at which open streams are ended; infinite until a drain begins."""

    def begin(self, grace_s: float) -> None:
        if self.deadline == math.inf:
            self.deadline = time.monotonic() + max(0.0, grace_s - MARGIN_S)
