"""Declarative tables. Portable types: they run on Postgres (asyncpg) and SQLite (aiosqlite).

Money is integer micro-dollars; prices are USD per million tokens (float, as published).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    budget_micro_usd: Mapped[int | None] = mapped_column(sa.BigInteger)
    budget_period: Mapped[str | None] = mapped_column(sa.String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """An account of one tenant. An email is unique within a tenant only: whether an address has an
    account in another tenant is nobody else's business (a global unique answer disclosed it)."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "email"),)
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(sa.String(320), index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(20), default="member")
    is_platform_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    """Set by a one-time password (first run, a reset): the admin UI asks for a new one before anything else."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    prefix: Mapped[str] = mapped_column(sa.String(20), index=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    allow_custom_models: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    allowed_models: Mapped[list[str]] = mapped_column(Json, default=list)
    aliases: Mapped[list[list[str]]] = mapped_column(Json, default=list)
    claude_code_profile: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    rpm_limit: Mapped[int | None] = mapped_column(sa.Integer)
    tpm_limit: Mapped[int | None] = mapped_column(sa.Integer)
    concurrency_limit: Mapped[int | None] = mapped_column(sa.Integer)
    budget_micro_usd: Mapped[int | None] = mapped_column(sa.BigInteger)
    budget_period: Mapped[str | None] = mapped_column(sa.String(10))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamRow(Base):
    __tablename__ = "upstreams"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    base_url: Mapped[str] = mapped_column(sa.String(2000))
    dialect: Mapped[str] = mapped_column(sa.String(20))
    extra_headers: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    timeout_s: Mapped[float | None] = mapped_column(sa.Float)
    profile: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamKeyRow(Base):
    """One credential of an upstream's key pool (``gateway.upstreams.pool``).

    The secret is sealed with the *upstream's* context (``upstream_secret_context(upstream_id)``): it cannot be
    moved to another upstream, and the migration that made pools could move the one stored key here unchanged.
    ``state`` is ``active`` or ``disabled`` (with ``disabled_reason``); cooling after a 429 is transient and
    lives in the pool's shared state, not here. ``priority``: lower first; ``weight``: share within a priority.
    """

    __tablename__ = "upstream_keys"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    upstream_id: Mapped[str] = mapped_column(sa.ForeignKey("upstreams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    api_key_encrypted: Mapped[str] = mapped_column(sa.Text)
    weight: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    priority: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    rpm_limit: Mapped[int | None] = mapped_column(sa.Integer)
    tpm_limit: Mapped[int | None] = mapped_column(sa.Integer)
    state: Mapped[str] = mapped_column(sa.String(16), default="active", server_default="active")
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(500))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    upstream_id: Mapped[str] = mapped_column(sa.ForeignKey("upstreams.id", ondelete="CASCADE"), index=True)
    upstream_model: Mapped[str] = mapped_column(sa.String(200))
    input_price: Mapped[float] = mapped_column(sa.Float, default=0.0)
    output_price: Mapped[float] = mapped_column(sa.Float, default=0.0)
    cache_read_price: Mapped[float] = mapped_column(sa.Float, default=0.0)
    cache_write_price: Mapped[float] = mapped_column(sa.Float, default=0.0)
    context_window: Mapped[int | None] = mapped_column(sa.Integer)
    max_output_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    capabilities: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    profile: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    fallbacks: Mapped[list[str]] = mapped_column(Json, default=list)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderRow(Base):
    """An operator's switch and credential for a provider of the built-in catalog."""

    __tablename__ = "providers"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    api_key_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    base_url: Mapped[str | None] = mapped_column(sa.String(2000))
    price_overrides: Mapped[dict[str, dict[str, float]]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ManagementToken(Base):
    """A bearer token for the JSON management API, scoped to one tenant or (tenant null) the platform."""

    __tablename__ = "management_tokens"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    prefix: Mapped[str] = mapped_column(sa.String(20))
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(sa.String(20), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsageEvent(Base):
    """The ledger: one row per request.

    On Postgres the table is range-partitioned by month on ``created_at`` (migration
    ``c20b1550eba6``, ``gateway/metering/partitions.py``), so there its primary key is
    ``(id, created_at)`` and its request-id uniqueness ``(request_id, created_at)``: a partitioned
    table's unique constraints must hold the partition key. The model keeps SQLite's one table.
    """

    __tablename__ = "usage_events"
    __table_args__ = (
        # Keyset paging of the request log walks (created_at, id) backwards: id is in every index.
        sa.Index("ix_usage_events_tenant_time", "tenant_id", "created_at", "id"),
        sa.Index("ix_usage_events_key_time", "key_id", "created_at", "id"),
        sa.Index("ix_usage_events_tenant_model_time", "tenant_id", "model", "created_at", "id"),
        sa.Index("ix_usage_events_upstream_key_time", "upstream_key_id", "created_at"),
        sa.Index(
            "ix_usage_events_tenant_errors",
            "tenant_id",
            "created_at",
            "id",
            postgresql_where=sa.text("status >= 400"),
            sqlite_where=sa.text("status >= 400"),
        ),
    )
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tenant_id: Mapped[str] = mapped_column(sa.String(32))
    key_id: Mapped[str | None] = mapped_column(sa.String(32))
    model: Mapped[str] = mapped_column(sa.String(200))
    upstream_id: Mapped[str | None] = mapped_column(sa.String(32))
    upstream_key_id: Mapped[str | None] = mapped_column(sa.String(32))
    """The pool key that carried the last attempt (``upstream_keys.id``); NULL for catalog providers."""
    door_dialect: Mapped[str] = mapped_column(sa.String(20))
    upstream_dialect: Mapped[str | None] = mapped_column(sa.String(20))
    stream: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    input_tokens: Mapped[int] = mapped_column(sa.Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(sa.Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(sa.Integer, default=0)
    estimated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    cost_micro_usd: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[int] = mapped_column(sa.Integer)
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    latency_ms: Mapped[int] = mapped_column(sa.Integer, default=0)
    ttft_ms: Mapped[int | None] = mapped_column(sa.Integer)
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=1, server_default="1")
    """Upstream attempts inside this one request (retries and fallbacks): one request, one row."""
    served_model: Mapped[str | None] = mapped_column(sa.String(200))
    """The fallback model that finally answered, when it was not ``model`` (the one asked for)."""
    conversion_notes: Mapped[str | None] = mapped_column(sa.String(1000))
    """What translation dropped or changed, comma-separated as in the ``relay-conversion-notes`` header."""
    asked_model: Mapped[str | None] = mapped_column(sa.String(200))
    """The model name the client sent, when the key's aliases routed it to ``model`` (``claude-*`` → …)."""


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    actor: Mapped[str] = mapped_column(sa.String(320))
    action: Mapped[str] = mapped_column(sa.String(100))
    target: Mapped[str] = mapped_column(sa.String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


NO_KEY = ""
"""``usage_daily.key_id`` of requests made without a key: '' rather than NULL, so the bucket stays unique."""


class UsageDaily(Base):
    """The ledger rolled up by UTC day, tenant, key and model; kept when old ``usage_events`` are purged.

    Maintained by the ledger in the same transaction as the events it counts (``gateway.metering.rollup``).
    """

    __tablename__ = "usage_daily"
    __table_args__ = (sa.Index("ix_usage_daily_key_day", "key_id", "day"),)
    tenant_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    key_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=NO_KEY)
    model: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    requests: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    errors: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cost_micro_usd: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class AdminSession(Base):
    """A signed-in admin UI session. The cookie carries a random 256-bit id; only its SHA-256 is stored.

    Expiry is enforced server-side: idle (``last_seen_at``) and absolute (``created_at``) timeouts.
    """

    __tablename__ = "admin_sessions"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    ip: Mapped[str] = mapped_column(sa.String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    viewing_tenant_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="SET NULL"), nullable=True, default=None
    )
    """A platform admin's "view as tenant": the tenant whose pages this session shows (``admin_ui.viewing``).
    Honoured only while the user is a platform admin; everyone else's sessions ignore it."""


class AdminFlash(Base):
    """A one-time message for the page a form redirects to (``admin_ui.flash``): the secret a creation made
    (an ``sk-`` key, a one-time password), sealed with AES-GCM, bound to its session, read at most once."""

    __tablename__ = "admin_flashes"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(sa.ForeignKey("admin_sessions.id", ondelete="CASCADE"), index=True)
    sealed: Mapped[str] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginAttempt(Base):
    """A failed admin UI sign-in, counted per submitted email and per client IP (throttling across workers)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        sa.Index("ix_login_attempts_email_time", "email", "created_at"),
        sa.Index("ix_login_attempts_ip_time", "ip", "created_at"),
    )
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email: Mapped[str] = mapped_column(sa.String(320))
    ip: Mapped[str] = mapped_column(sa.String(64))


class ConversationTurn(Base):
    """One stored turn of a server-held conversation (``gateway.conversations``): the whole transcript up to it.

    ``id`` is the id Relay returned (``resp_…`` for a Responses ``previous_response_id`` chain, ``msg_…`` for an
    Anthropic ``thread``); ``payload`` is the zlib-compressed JSON sealed with AES-256-GCM and bound to
    ``kind:id:tenant_id:key_id``. ``successor`` is a thread's single-successor state: NULL (open),
    ``in_flight`` or ``done``.
    """

    __tablename__ = "conversation_turns"
    __table_args__ = (
        sa.Index("ix_conversation_turns_tenant_expires", "tenant_id", "expires_at"),
        sa.Index("ix_conversation_turns_expires", "expires_at"),
    )
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(32))
    key_id: Mapped[str] = mapped_column(sa.String(32))
    kind: Mapped[str] = mapped_column(sa.String(16))
    parent_id: Mapped[str | None] = mapped_column(sa.String(64))
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    size_bytes: Mapped[int] = mapped_column(sa.Integer)
    successor: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Webhook(Base):
    """An alert endpoint of a tenant (or, ``tenant_id`` NULL, of the platform): ``gateway.webhooks``.

    ``events`` lists the event types it receives (empty: all). The signing secret is sealed with the
    webhook's own context and shown once, when created.
    """

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[list[str]] = mapped_column(Json, default=list)
    secret_encrypted: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: the durable queue its deliveries are retried from, off the request path.

    ``dedupe`` makes an event at most once per webhook (``budget.threshold`` once per budget, threshold and
    period): a second insert with the same value is ignored.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("webhook_id", "dedupe"),
        sa.Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(sa.ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(sa.String(64))
    dedupe: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when the retries ran out: the delivery is kept (visible) but no longer tried."""
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
