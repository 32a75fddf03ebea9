"""Settings, read once from the environment (prefix ``RELAY_``) and passed in; nothing reads env at import."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_SQLITE_FILE = "relay.db"
MIB = 1024 * 1024
_PLACEHOLDER_SECRETS = {"", "changeme", "changethis", "secret", "relay", "please-change-me"}


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_FILE}"
    redis_url: str | None = None
    redis_mode: str = "standalone"
    """``standalone``, ``cluster`` (``redis_url`` names any node) or ``sentinel`` (it names the sentinels)."""
    redis_sentinel_master: str = ""
    """The master's name the sentinels monitor (``sentinel`` mode only)."""
    secret_key: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "info"
    log_format: str = ""
    """``json`` or ``text``; empty: text in development (``RELAY_ENV=development`` or the embedded SQLite
    default), JSON otherwise (``log_format_resolved``)."""
    max_body_bytes: int = 32 * MIB
    root_path: str = ""
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    total_timeout_s: float = 600.0
    keepalive_s: float = 15.0
    shutdown_grace_s: float = 60.0
    """On SIGTERM, how long open streams may run on before the process exits."""
    trusted_proxies: str = ""
    """``RELAY_FORWARDED_ALLOW_IPS``: comma-separated IPs/CIDRs (``*``: any) whose ``X-Forwarded-For``/``-Proto``
    set the client IP and scheme; empty trusts nobody. ``RELAY_TRUSTED_PROXIES`` (its former name) and
    uvicorn's ``FORWARDED_ALLOW_IPS`` are read when it is unset."""
    max_connections: int = 10_000
    """Open connections per worker (uvicorn's ``limit_concurrency``); 0 means no cap."""
    metrics_token: str = field(default="", repr=False)
    """Bearer token for ``/metrics``; empty turns the endpoint off."""
    upstream_retries: int = 1
    """Retries on the same upstream before the first byte (connect errors, 5xx, a short 429)."""
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    key_cache_ttl_s: float = 3.0
    route_cache_ttl_s: float = 5.0
    stale_if_error_s: float = 300.0
    """While the database is unreachable, cached keys and model tables are served this long past their expiry."""
    development: bool = False
    anthropic_beta_defaults: tuple[str, ...] = ()
    limit_shares: int = 0
    """Workers across all replicas, among which a budget's remainder is split while Redis is away; 0: RELAY_WORKERS."""
    metering_fail_closed: bool = False
    """Refuse requests with 503 while Redis is unreachable instead of falling back to per-process limits."""
    upstream_allowlist: str = ""
    """Hosts, IPs and ranges tenant upstreams may reach despite the SSRF guard (e.g. a local Ollama)."""
    usage_retention_days: int = 0
    """Delete ``usage_events`` older than this many days (the daily rollups are kept); 0 keeps them forever."""
    conversation_ttl_s: float = 30 * 86400.0
    """How long a stored conversation turn (Responses ``previous_response_id``, Anthropic ``thread``) stays usable."""
    conversation_max_bytes: int = 8 * MIB
    """Largest stored transcript (plaintext JSON bytes); a longer conversation is not stored (clients replay it)."""
    spool_dir: str = ""
    """Where each process appends usage records before they reach the ledger (``metering/spool.py``).

    Empty: ``relay-spool`` beside the SQLite file, or in the working directory on Postgres (the
    image's ``/data``). ``off`` turns the spool off: a killed process then loses its unwritten rows.
    """
    gc_tuning: bool = True
    """Freeze start-up objects out of the garbage collector and collect less often (``app.tune_gc``)."""
    web_search_url: str = ""
    """A SearXNG-shaped search endpoint (``GET {url}?q=…&format=json``): Relay then runs Anthropic's
    ``web_search`` server tool for OpenAI-dialect models (``gateway.websearch``). Empty: the tool is dropped."""
    web_search_key: str = field(default="", repr=False)
    """Sent to the search endpoint as ``Authorization: Bearer`` (a SearXNG behind an auth proxy)."""
    web_search_price: float = 0.0
    """USD per 1,000 searches, added to the request's cost."""
    web_search_timeout_s: float = 10.0
    """How long one search may take before the model is told the search is unavailable."""
    webhook_poll_s: float = 2.0
    """How often each process looks for webhook deliveries that are due (``gateway.webhooks``)."""
    webhook_sweep_s: float = 30.0
    """How often budgets and key expiries are checked for webhook events."""
    provider_env: dict[str, str] = field(default_factory=dict, repr=False)
    """``RELAY_PROVIDER_<NAME>_API_KEY`` / ``_ENABLED`` variables: built-in providers turned on by the environment."""

    @property
    def embedded(self) -> bool:
        """SQLite without Redis: the zero-configuration mode."""
        return self.database_url.startswith("sqlite")

    @property
    def log_format_resolved(self) -> str:
        if self.log_format:
            return self.log_format
        return "text" if self.development or self.embedded else "json"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.embedded:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        return None if path in ("", ":memory:") else Path(path)

    @property
    def spool_root(self) -> Path | None:
        if self.spool_dir.lower() == "off":
            return None
        if self.spool_dir:
            return Path(self.spool_dir)
        db = self.sqlite_path
        return (db.parent if db else Path.cwd()) / "relay-spool"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = env.get
        d = cls()
        s = cls(
            database_url=normalise_database_url(get("RELAY_DATABASE_URL") or d.database_url),
            redis_url=get("RELAY_REDIS_URL") or None,
            redis_mode=get("RELAY_REDIS_MODE", "").strip().lower() or d.redis_mode,
            redis_sentinel_master=get("RELAY_REDIS_SENTINEL_MASTER", "").strip(),
            secret_key=get("RELAY_SECRET_KEY", ""),
            host=get("RELAY_HOST", d.host),
            port=_int(env, "RELAY_PORT", d.port),
            workers=_int(env, "RELAY_WORKERS", d.workers),
            log_level=get("RELAY_LOG_LEVEL", d.log_level).lower(),
            log_format=get("RELAY_LOG_FORMAT", "").strip().lower(),
            max_body_bytes=_int(env, "RELAY_MAX_BODY_BYTES", d.max_body_bytes),
            root_path=_root_path(get("RELAY_ROOT_PATH", "")),
            connect_timeout_s=_float(env, "RELAY_CONNECT_TIMEOUT", d.connect_timeout_s),
            first_byte_timeout_s=_float(env, "RELAY_FIRST_BYTE_TIMEOUT", d.first_byte_timeout_s),
            idle_timeout_s=_float(env, "RELAY_IDLE_TIMEOUT", d.idle_timeout_s),
            total_timeout_s=_float(env, "RELAY_TOTAL_TIMEOUT", d.total_timeout_s),
            keepalive_s=_float(env, "RELAY_KEEPALIVE_INTERVAL", d.keepalive_s),
            shutdown_grace_s=_float(env, "RELAY_SHUTDOWN_GRACE", d.shutdown_grace_s),
            max_connections=_int(env, "RELAY_MAX_CONNECTIONS", d.max_connections),
            trusted_proxies=_first(env, "RELAY_FORWARDED_ALLOW_IPS", "RELAY_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS"),
            upstream_retries=_int(env, "RELAY_UPSTREAM_RETRIES", d.upstream_retries),
            metrics_token=get("RELAY_METRICS_TOKEN", ""),
            breaker_threshold=_int(env, "RELAY_BREAKER_THRESHOLD", d.breaker_threshold),
            breaker_cooldown_s=_float(env, "RELAY_BREAKER_COOLDOWN", d.breaker_cooldown_s),
            key_cache_ttl_s=_float(env, "RELAY_KEY_CACHE_TTL", d.key_cache_ttl_s),
            route_cache_ttl_s=_float(env, "RELAY_ROUTE_CACHE_TTL", d.route_cache_ttl_s),
            stale_if_error_s=_float(env, "RELAY_STALE_IF_ERROR", d.stale_if_error_s),
            development=get("RELAY_ENV", "").lower() in ("dev", "development", "test"),
            upstream_allowlist=get("RELAY_UPSTREAM_ALLOWLIST", ""),
            limit_shares=_int(env, "RELAY_LIMIT_SHARES", d.limit_shares),
            metering_fail_closed=get("RELAY_METERING_FAIL_CLOSED", "").lower() in ("1", "true", "yes", "on"),
            usage_retention_days=_int(env, "RELAY_USAGE_RETENTION_DAYS", d.usage_retention_days),
            conversation_ttl_s=_float(env, "RELAY_CONVERSATION_TTL", d.conversation_ttl_s),
            conversation_max_bytes=_int(env, "RELAY_CONVERSATION_MAX_BYTES", d.conversation_max_bytes),
            spool_dir=get("RELAY_SPOOL_DIR", ""),
            gc_tuning=get("RELAY_GC_TUNING", "on").lower() not in ("0", "false", "no", "off"),
            web_search_url=get("RELAY_WEB_SEARCH_URL", "").strip(),
            web_search_key=get("RELAY_WEB_SEARCH_KEY", ""),
            web_search_price=_float(env, "RELAY_WEB_SEARCH_PRICE", d.web_search_price),
            web_search_timeout_s=_float(env, "RELAY_WEB_SEARCH_TIMEOUT", d.web_search_timeout_s),
            webhook_poll_s=_float(env, "RELAY_WEBHOOK_POLL_S", d.webhook_poll_s),
            webhook_sweep_s=_float(env, "RELAY_WEBHOOK_SWEEP_S", d.webhook_sweep_s),
            provider_env={k: v for k, v in env.items() if k.startswith("RELAY_PROVIDER_")},
            anthropic_beta_defaults=tuple(
                b.strip() for b in get("RELAY_ANTHROPIC_BETA_DEFAULTS", "").split(",") if b.strip()
            ),
        )
        return s.checked().with_secret()

    def checked(self) -> Settings:
        """Refuse settings that cannot work (they would fail later, at a worse moment)."""
        if self.redis_mode not in ("standalone", "cluster", "sentinel"):
            raise SettingsError("RELAY_REDIS_MODE must be standalone, cluster or sentinel")
        if self.redis_mode != "standalone" and not self.redis_url:
            raise SettingsError(f"RELAY_REDIS_MODE={self.redis_mode} needs RELAY_REDIS_URL")
        if self.redis_mode == "sentinel" and not self.redis_sentinel_master:
            raise SettingsError("RELAY_REDIS_MODE=sentinel needs RELAY_REDIS_SENTINEL_MASTER (the master's name)")
        if self.log_format not in ("", "json", "text"):
            raise SettingsError("RELAY_LOG_FORMAT must be json or text")
        if self.web_search_url and not self.web_search_url.startswith(("http://", "https://")):
            raise SettingsError("RELAY_WEB_SEARCH_URL must be an http:// or https:// URL")
        if self.web_search_price < 0 or self.web_search_timeout_s <= 0:
            raise SettingsError("RELAY_WEB_SEARCH_PRICE must be >= 0 and RELAY_WEB_SEARCH_TIMEOUT > 0")
        if self.webhook_poll_s <= 0 or self.webhook_sweep_s <= 0:
            raise SettingsError("RELAY_WEBHOOK_POLL_S and RELAY_WEBHOOK_SWEEP_S must be > 0")
        return self

    def with_secret(self) -> Settings:
        """Check the secret key; in embedded mode create one beside the SQLite file when absent."""
        if self.secret_key:
            if self.secret_key.lower() in _PLACEHOLDER_SECRETS and not self.development:
                raise SettingsError("RELAY_SECRET_KEY is a placeholder; set a long random value")
            if len(self.secret_key) < 16 and not self.development:
                raise SettingsError("RELAY_SECRET_KEY must be at least 16 characters")
            return self
        if not self.embedded:
            raise SettingsError("RELAY_SECRET_KEY is required when RELAY_DATABASE_URL is not SQLite")
        db = self.sqlite_path
        key_file = (db.parent if db else Path.cwd()) / ".relay-secret-key"
        if key_file.exists():
            return replace(self, secret_key=key_file.read_text().strip())
        key = secrets.token_urlsafe(48)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return replace(self, secret_key=key)


def normalise_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``postgres://`` and ``sqlite:///`` URLs; drive them async."""
    for plain in ("postgresql://", "postgres://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if not url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise SettingsError("RELAY_DATABASE_URL must be a postgresql:// or sqlite:/// URL")
    return url


def _root_path(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    return value


def _first(env: Mapping[str, str], *names: str) -> str:
    """The first of ``names`` that is set (an alias after the documented name), stripped."""
    for name in names:
        if (value := env.get(name)) is not None:
            return value.strip()
    return ""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
