"""What an upstream's 400 says about the largest ``max_tokens`` it accepts.

Claude Code asks for ``max_tokens: 128000`` with its default models; an OpenAI-dialect upstream whose
limit Relay does not know answers 400 in its own words. When those words state the limit, the relay
retries once with ``max_tokens`` clamped, before the first byte, and remembers the limit for the
model (``gateway.relay``). Wordings recognised (each one seen from the provider named):

- DeepSeek: ``Invalid max_tokens value, the valid range of max_tokens is [1, 8192]``
- Qwen (DashScope): ``Range of max_tokens should be [1, 8192]``
- OpenAI: ``max_tokens is too large: 128000. This model supports at most 16384 completion tokens…``
- Kimi, GLM and the generic forms: ``max_tokens … must be less than or equal to N`` / ``<= N`` /
  ``at most N`` / ``should not exceed N``
- vLLM (0.9+), and OpenAI-compatible servers built on it: ``'max_tokens' or 'max_completion_tokens' is
  too large: Y. This model's maximum context length is Z tokens and your request has X input tokens``.
  That limit is Z - X, which depends on the prompt: retried, never remembered.

Ollama clamps by itself and never answers 400 for this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["StatedLimit", "stated_output_limit"]

_FIXED = (
    re.compile(r"range of max_(?:completion_)?tokens (?:is|should be)\s*\[\s*\d+\s*,\s*(\d+)\s*\]", re.I),
    re.compile(r"supports at most (\d+) (?:completion|output) tokens", re.I),
    re.compile(
        r"max_(?:completion_|output_)?tokens\b[^.\d]{0,80}?"
        r"(?:less than or equal to|<=|at most|not exceed|no more than|no larger than|maximum(?: value)? is)\s*(\d+)",
        re.I,
    ),
)
_CONTEXT = re.compile(
    r"max_(?:completion_)?tokens\W.{0,60}?too large\D{0,5}\d+.{0,40}?maximum context length is (\d+) tokens"
    r".{0,40}?(\d+) input tokens",
    re.I | re.S,
)
_MIN_USEFUL = 16
"""A stated limit below this is not a real output limit (a misparse, or a prompt that nearly fills the window)."""


@dataclass(frozen=True, slots=True)
class StatedLimit:
    limit: int
    fixed: bool
    """True when the limit belongs to the model (remember it); False when it follows from this prompt's size."""


def stated_output_limit(message: str) -> StatedLimit | None:
    """The ``max_tokens`` limit an upstream's error message states, if it states one."""
    message = message[:2000]
    for pattern in _FIXED:
        found = pattern.search(message)
        if found:
            limit = int(found.group(1))
            return StatedLimit(limit, fixed=True) if limit >= _MIN_USEFUL else None
    found = _CONTEXT.search(message)
    if found:
        limit = int(found.group(1)) - int(found.group(2))
        return StatedLimit(limit, fixed=False) if limit >= _MIN_USEFUL else None
    return None
