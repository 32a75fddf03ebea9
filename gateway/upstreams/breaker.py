"""A circuit breaker per upstream: stop sending to one that keeps failing, probe it again after a pause.

Closed: requests flow; ``threshold`` consecutive failures (connect errors, timeouts, 5xx) open it.
Open: requests fail fast (so fallbacks answer at once) for ``cooldown_s``. Then half-open: one
request goes through as a probe; its success closes the breaker, its failure opens it again.
Per process: each worker learns on its own, which is enough to shed a dead upstream in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Breakers:
    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._threshold = threshold
        self._cooldown = cooldown_s
        self._clock = clock
        self._states: dict[str, _State] = {}

    def state(self, upstream_id: str) -> str:
        st = self._states.get(upstream_id)
        if st is None or st.opened_at is None:
            return "closed"
        return "half_open" if st.probing or self._clock() - st.opened_at >= self._cooldown else "open"

    def allow(self, upstream_id: str) -> bool:
        st = self._states.get(upstream_id)
        if st is None or st.opened_at is None:
            return True
        if st.probing or self._clock() - st.opened_at < self._cooldown:
            return False
        st.probing = True  # this request is the half-open probe; the others wait for its verdict
        return True

    def success(self, upstream_id: str) -> None:
        self._states.pop(upstream_id, None)

    def failure(self, upstream_id: str) -> None:
        st = self._states.setdefault(upstream_id, _State())
        st.failures += 1
        if st.probing or st.failures >= self._threshold:
            st.opened_at = self._clock()
            st.probing = False

    def states(self) -> dict[str, str]:
        return {uid: self.state(uid) for uid in self._states}
