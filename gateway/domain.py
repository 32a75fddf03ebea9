"""Frozen records shared by every layer. Imports nothing of ours."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Dialect(enum.StrEnum):
    """The wire format of a door or an upstream.

    ``responses`` (OpenAI's Responses API) is a door dialect only: an upstream that speaks it is
    an ``openai`` upstream whose capability profile says ``supports_responses``.
    """

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    RESPONSES = "responses"


UPSTREAM_DIALECTS = (Dialect.ANTHROPIC, Dialect.OPENAI)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one request, in Anthropic's accounting: ``input_tokens`` excludes cached input.

    OpenAI's ``prompt_tokens`` includes ``cached_tokens``; converting it subtracts them so no
    token is priced twice.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def plus(self, other: Usage) -> Usage:
        """Both together (several upstream calls of one request)."""
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of each kind."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost_micro_usd(self, usage: Usage) -> int:
        """Cost in integer micro-dollars: USD/MTok x tokens equals micro-USD exactly."""
        return round(
            self.input * usage.input_tokens
            + self.output * usage.output_tokens
            + self.cache_read * usage.cache_read_tokens
            + self.cache_write * usage.cache_write_tokens
        )


CLAUDE_CODE_FAMILIES = ("opus", "sonnet", "haiku")


def claude_code_aliases(profile: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Alias rules for a key's Claude Code profile: every model id Claude Code sends for a family.

    Claude Code names its models ``claude-opus-4-8``, ``claude-sonnet-5``,
    ``claude-haiku-4-5-20251001`` and so on (its ``[1m]`` suffix never reaches the wire); the
    ``--model opus`` shorthand arrives as such an id too, but plain family names are matched as well.
    """
    rules: list[tuple[str, str]] = []
    for family in CLAUDE_CODE_FAMILIES:
        model = profile.get(family)
        if model:
            rules += [(f"claude-{family}*", model), (f"claude-*-{family}*", model), (family, model)]
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated ``sk-`` key and what it may do."""

    key_id: str
    tenant_id: str
    name: str
    prefix: str
    allow_custom_models: bool = False
    allowed_models: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    expires_at: datetime | None = None
    limits: Limits = field(default_factory=lambda: Limits())


@dataclass(frozen=True, slots=True)
class Limits:
    """What one key may consume: rates per minute, requests in flight, money (micro-USD) per period.

    ``None`` means unlimited. ``budget_period`` is ``"month"`` (resets at the start of each UTC
    month) or ``"total"``. The tenant's budget applies to all its keys together.
    """

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    budget_micro_usd: int | None = None
    budget_period: str = "total"
    tenant_budget_micro_usd: int | None = None
    tenant_budget_period: str = "total"

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.rpm, self.tpm, self.concurrency, self.budget_micro_usd, self.tenant_budget_micro_usd)
        )

    @property
    def has_budget(self) -> bool:
        return self.budget_micro_usd is not None or self.tenant_budget_micro_usd is not None

    @property
    def needs_estimate(self) -> bool:
        """Token and money limits need the request's estimated size before it is sent."""
        return self.tpm is not None or self.budget_micro_usd is not None or self.tenant_budget_micro_usd is not None


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    """One active credential of an upstream's key pool, decrypted (never logged, never rendered).

    ``priority``: lower is used first; ``weight``: its share among the keys of its priority;
    ``rpm``/``tpm``: its own per-minute limits (None: unlimited).
    """

    id: str
    secret: str = field(repr=False)
    name: str = ""
    weight: int = 1
    priority: int = 1
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    """A provider endpoint with its decrypted credential (never logged, never rendered).

    ``keys`` is its pool of active credentials; ``api_key``/``key_id`` are the one this copy carries
    (the pool's first until the relay picks one per attempt: ``gateway.upstreams.pool``).
    """

    id: str
    name: str
    tenant_id: str | None
    dialect: Dialect
    base_url: str
    api_key: str = field(repr=False, default="")
    extra_headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    keys: tuple[UpstreamKey, ...] = ()
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """What routing returns for one request: where to send it and how to price it."""

    public_name: str
    model_id: str
    upstream: Upstream
    upstream_model: str
    price: Price = Price()
    profile: dict[str, Any] = field(default_factory=dict)
    max_output_tokens: int | None = None
    context_window: int | None = None
    fallbacks: tuple[str, ...] = ()
    thinking: bool = False
    """Turn extended thinking on (the public name ended in ``-thinking``)."""

    @property
    def dialect(self) -> Dialect:
        return self.upstream.dialect


def merge_profile(
    upstream_profile: dict[str, Any], model_profile: dict[str, Any], max_output_tokens: int | None = None
) -> dict[str, Any]:
    """Capability-profile overrides of a model: its upstream's keys, then its own (model keys win).

    A model's ``max_output_tokens`` column is its output cap unless the model profile sets one.
    """
    merged = {**upstream_profile, **model_profile}
    if max_output_tokens and "max_output_tokens" not in model_profile:
        merged["max_output_tokens"] = max_output_tokens
    return merged
