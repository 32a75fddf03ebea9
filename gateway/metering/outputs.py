"""What each model really produces, so a budget reservation need not trust ``max_tokens``.

Reasoning models and some providers report more output than the request allowed (a tester's
upstream reported ten times ``max_tokens``: 100 concurrent requests spent $8.20 of a $1 budget).
Per upstream model, this keeps the last ``WINDOW`` completions' output tokens and whether any of
them went past what its request asked. A model that honours ``max_tokens`` is reserved at
``max_tokens`` (its exact worst case); one that has not, at the larger of ``max_tokens`` and the
running p99 of what it really produced. Per process, in memory: each worker learns on its own
within a few requests.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 256


@dataclass(slots=True)
class _Seen:
    outputs: deque[int] = field(default_factory=lambda: deque(maxlen=WINDOW))
    overruns: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    p99: int = 0


class OutputStats:
    def __init__(self) -> None:
        self._models: dict[tuple[str | None, str], _Seen] = {}

    def observe(self, model: tuple[str | None, str], asked: int | None, produced: int) -> None:
        seen = self._models.get(model)
        if seen is None:
            seen = self._models[model] = _Seen()
        seen.outputs.append(produced)
        seen.overruns.append(asked is not None and produced > asked)
        ranked = sorted(seen.outputs)
        seen.p99 = ranked[min(len(ranked) - 1, (len(ranked) * 99) // 100)]

    def expected(self, model: tuple[str | None, str], asked: int) -> int:
        """Output tokens to reserve for a request asking for ``asked``."""
        seen = self._models.get(model)
        if seen is None or not any(seen.overruns):
            return asked
        return max(asked, seen.p99)
