"""When to try again before the first byte: on the same upstream (retries) or on the next model (fallbacks)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.errors import GatewayError, UpstreamBlocked, UpstreamError, UpstreamTimeout


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on the same upstream, before the first byte only: connect errors and 5xx with backoff,
    429 when its ``retry-after`` is short. Bounded per attempt and in total, as Portkey and Cloudflare do.
    """

    retries: int = 1
    base_delay_s: float = 0.25
    max_retry_after_s: float = 5.0
    max_total_wait_s: float = 10.0

    def delay(self, exc: GatewayError, retry: int, waited: float) -> float | None:
        if (
            retry >= self.retries
            or not isinstance(exc, UpstreamError)
            or isinstance(exc, UpstreamTimeout | UpstreamBlocked)
        ):
            return None
        if exc.code == "circuit_open":
            return None  # waiting cannot help before the cooldown; a fallback can
        if exc.status_code == 429:
            wait = retry_after(exc.headers)
            if wait is None or wait > self.max_retry_after_s:
                return None  # a long wait is the client's to decide; it gets the 429 and its retry-after
        elif exc.status_code >= 500:
            wait = self.base_delay_s * 2**retry * (0.5 + random.random())
        else:
            return None
        return wait if waited + wait <= self.max_total_wait_s else None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds an upstream asks us to wait (``retry-after-ms`` or ``retry-after``); None when absent or a date."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is not None:
            try:
                return max(float(raw) * scale, 0.0)
            except ValueError:
                return None  # an HTTP-date: treat as long
    return None


def falls_back(exc: GatewayError) -> bool:
    """Worth another model: the upstream is unreachable, slow, rate-limited or failing (not the request's fault)."""
    return isinstance(exc, UpstreamError) and (exc.status_code == 429 or exc.status_code >= 500)
