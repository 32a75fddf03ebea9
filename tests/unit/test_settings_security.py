"""Settings read from an env mapping (``gateway.settings``) and the key/secret primitives (``gateway.security``)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from gateway.security import (
    SecretBox,
    derive_key,
    digest_api_key,
    display_prefix,
    generate_api_key,
    looks_like_api_key,
    mask_secret,
    upstream_secret_context,
)
from gateway.settings import MIB, Settings, SettingsError, normalise_database_url

GOOD_SECRET = "a-long-random-secret-value-for-tests-0123456789"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose SQLite file (and generated secret) live in ``tmp_path``, never the cwd."""
    return {"RELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}", **extra}


# ---------------------------------------------------------------- settings


def test_defaults(tmp_path):
    s = Settings.from_env(env_for(tmp_path))
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    assert s.embedded and s.sqlite_path == tmp_path / "relay.db"
    assert s.redis_url is None
    assert (s.host, s.port, s.workers, s.log_level) == ("127.0.0.1", 8080, 1, "info")
    assert s.max_body_bytes == 32 * MIB  # Anthropic's limit
    assert (s.connect_timeout_s, s.first_byte_timeout_s, s.idle_timeout_s, s.total_timeout_s) == (10, 120, 120, 600)
    assert s.key_cache_ttl_s <= 5  # the revocation promise
    assert s.root_path == "" and s.development is False and s.anthropic_beta_defaults == ()


def test_values_are_read(tmp_path):
    s = Settings.from_env(
        env_for(
            tmp_path,
            RELAY_SECRET_KEY=GOOD_SECRET,
            RELAY_REDIS_URL="redis://r:6379/1",
            RELAY_PORT="9000",
            RELAY_WORKERS="4",
            RELAY_LOG_LEVEL="DEBUG",
            RELAY_MAX_BODY_BYTES="1024",
            RELAY_FIRST_BYTE_TIMEOUT="2.5",
            RELAY_ANTHROPIC_BETA_DEFAULTS=" a-1 , ,b-2 ",
            RELAY_ENV="Development",
        )
    )
    assert (s.port, s.workers, s.log_level, s.max_body_bytes) == (9000, 4, "debug", 1024)
    assert s.first_byte_timeout_s == 2.5 and s.redis_url == "redis://r:6379/1"
    assert s.anthropic_beta_defaults == ("a-1", "b-2")
    assert s.development is True and s.secret_key == GOOD_SECRET


def test_empty_values_mean_default(tmp_path):
    s = Settings.from_env(env_for(tmp_path, RELAY_PORT="", RELAY_IDLE_TIMEOUT="", RELAY_REDIS_URL=""))
    assert (s.port, s.idle_timeout_s, s.redis_url) == (8080, 120.0, None)


def test_secret_key_is_not_in_repr(tmp_path):
    s = Settings.from_env(env_for(tmp_path, RELAY_SECRET_KEY=GOOD_SECRET))
    assert GOOD_SECRET not in repr(s)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///relay.db", "sqlite+aiosqlite:///relay.db"),
        ("sqlite:////abs/relay.db", "sqlite+aiosqlite:////abs/relay.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_normalised_to_async_drivers(given, expected):
    assert normalise_database_url(given) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "redis://h", "relay.db", "http://h/db"])
def test_unsupported_database_url_named(url):
    with pytest.raises(SettingsError, match="RELAY_DATABASE_URL"):
        normalise_database_url(url)


def test_postgres_url_from_env_normalised():
    s = Settings.from_env({"RELAY_DATABASE_URL": "postgres://u@h/db", "RELAY_SECRET_KEY": GOOD_SECRET})
    assert s.database_url == "postgresql+asyncpg://u@h/db" and not s.embedded and s.sqlite_path is None


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("RELAY_PORT", "eighty", "an integer"),
        ("RELAY_WORKERS", "2.5", "an integer"),
        ("RELAY_MAX_BODY_BYTES", "32MiB", "an integer"),
        ("RELAY_FIRST_BYTE_TIMEOUT", "soon", "a number"),
        ("RELAY_KEY_CACHE_TTL", "3s", "a number"),
    ],
)
def test_bad_numbers_name_the_variable_and_value(tmp_path, name, value, kind):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env_for(tmp_path, **{name: value}))
    assert name in str(info.value) and repr(value) in str(info.value) and kind in str(info.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("", ""), ("/", ""), ("relay", "/relay"), ("/relay/", "/relay"), (" /a/b/ ", "/a/b"), ("a/b", "/a/b")],
)
def test_root_path_normalised(tmp_path, given, expected):
    assert Settings.from_env(env_for(tmp_path, RELAY_ROOT_PATH=given)).root_path == expected


def test_secret_key_required_for_postgres():
    with pytest.raises(SettingsError, match="RELAY_SECRET_KEY is required"):
        Settings.from_env({"RELAY_DATABASE_URL": "postgresql://u@h/db"})


@pytest.mark.parametrize("placeholder", ["changeme", "CHANGEME", "secret", "please-change-me"])
def test_placeholder_secret_refused_outside_development(tmp_path, placeholder):
    with pytest.raises(SettingsError, match="placeholder"):
        Settings.from_env(env_for(tmp_path, RELAY_SECRET_KEY=placeholder))
    with pytest.raises(SettingsError, match="placeholder"):
        Settings.from_env({"RELAY_DATABASE_URL": "postgresql://u@h/db", "RELAY_SECRET_KEY": placeholder})
    dev = Settings.from_env(env_for(tmp_path, RELAY_SECRET_KEY=placeholder, RELAY_ENV="dev"))
    assert dev.secret_key == placeholder


def test_short_secret_refused_outside_development(tmp_path):
    with pytest.raises(SettingsError, match="at least 16"):
        Settings.from_env(env_for(tmp_path, RELAY_SECRET_KEY="short-but-real"))
    assert Settings.from_env(env_for(tmp_path, RELAY_SECRET_KEY="short-but-real", RELAY_ENV="test")).secret_key


def test_embedded_mode_generates_then_reuses_a_secret_beside_the_sqlite_file(tmp_path):
    db_dir = tmp_path / "data" / "nested"  # not created yet
    env = {"RELAY_DATABASE_URL": f"sqlite:///{db_dir / 'relay.db'}"}
    first = Settings.from_env(env)
    key_file = db_dir / ".relay-secret-key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # only the owner may read it
    assert len(first.secret_key) >= 48 and key_file.read_text().strip() == first.secret_key
    second = Settings.from_env(env)
    assert second.secret_key == first.secret_key  # restarts keep every stored digest and ciphertext valid
    other = Settings.from_env({"RELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}"})
    assert other.secret_key == Settings.from_env({"RELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}).secret_key
    assert other.secret_key != first.secret_key


def test_explicit_secret_wins_over_the_key_file(tmp_path):
    Settings.from_env(env_for(tmp_path))
    assert Settings.from_env(env_for(tmp_path, RELAY_SECRET_KEY=GOOD_SECRET)).secret_key == GOOD_SECRET


def test_in_memory_sqlite_keeps_its_secret_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({"RELAY_DATABASE_URL": "sqlite:///:memory:"})
    assert (tmp_path / ".relay-secret-key").read_text().strip() == s.secret_key


# ---------------------------------------------------------------- keys


def test_generated_keys_have_the_documented_format():
    keys = {generate_api_key() for _ in range(2000)}
    assert len(keys) == 2000
    for key in keys:
        assert key.startswith("sk-") and len(key) == 51
        assert key[3:].isalnum() and key[3:].isascii()
        assert looks_like_api_key(key)
    # ~5.95 bits per base62 character: all 62 symbols show up across the sample.
    assert len({c for k in keys for c in k[3:]}) == 62


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sk-",
        "sk-short",
        "sk-" + "a" * 39,
        "sk-" + "a" * 129,
        "sk-" + "!" * 48,
        "sk-" + "a" * 47 + "-",
        "sk-" + "a" * 47 + "é",
        "pk-" + "a" * 48,
        "SK-" + "a" * 48,
        "Bearer",
        "' OR 1=1--",
        " sk-" + "a" * 48,
    ],
)
def test_looks_like_api_key_rejects(value):
    assert not looks_like_api_key(value)


@pytest.mark.parametrize("length", [40, 48, 128])
def test_looks_like_api_key_accepts_base62_bodies(length):
    assert looks_like_api_key("sk-" + "aZ9" * (length // 3) + "x" * (length % 3))


def test_display_prefix_is_short():
    key = generate_api_key()
    assert display_prefix(key) == key[:10] and display_prefix(key).startswith("sk-")


def test_digest_is_keyed_per_secret_and_purpose():
    key = generate_api_key()
    a = derive_key("secret-one-0123456789", "api-key-digest")
    b = derive_key("secret-two-0123456789", "api-key-digest")
    assert len(a) == 32 and a != b
    assert derive_key("secret-one-0123456789", "upstream-secrets") != a  # one subkey per purpose
    assert digest_api_key(a, key) == digest_api_key(a, key)
    assert digest_api_key(a, key) != digest_api_key(b, key)
    assert digest_api_key(a, key) != digest_api_key(a, generate_api_key())
    digest = digest_api_key(a, key)
    assert len(digest) == 64 and int(digest, 16) >= 0 and key not in digest


# ---------------------------------------------------------------- upstream secrets


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(derive_key(GOOD_SECRET, "upstream-secrets"))


def test_secret_box_round_trip(box):
    ctx = upstream_secret_context("up_1")
    token = box.encrypt("up-secret-value-ü", context=ctx)
    assert token.startswith("v1:")
    assert "up-secret-value" not in token
    assert box.decrypt(token, context=ctx) == "up-secret-value-ü"
    assert box.encrypt("up-secret-value-ü", context=ctx) != token  # a fresh nonce each time


def test_ciphertext_moved_to_another_row_fails(box):
    token = box.encrypt("tenant-a-credential", context=upstream_secret_context("up_a"))
    with pytest.raises(InvalidTag):
        box.decrypt(token, context=upstream_secret_context("up_b"))


def test_ciphertext_under_another_secret_key_fails(box):
    token = box.encrypt("x", context="c")
    other = SecretBox(derive_key("another-secret-0123456789", "upstream-secrets"))
    with pytest.raises(InvalidTag):
        other.decrypt(token, context="c")


def test_tampered_ciphertext_fails(box):
    token = box.encrypt("credential", context="c")
    raw = bytearray(token.encode())
    raw[-3] = ord("A") if raw[-3] != ord("A") else ord("B")
    with pytest.raises((InvalidTag, ValueError)):
        box.decrypt(raw.decode(), context="c")


def test_unknown_format_refused(box):
    with pytest.raises(ValueError, match="unknown secret format"):
        box.decrypt("v0:" + box.encrypt("x", context="c")[3:], context="c")


def test_upstream_secret_context_differs_per_row():
    assert upstream_secret_context("a") != upstream_secret_context("b")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("up-secret-openai", "…enai"),
        ("sk-" + "a" * 44 + "WXYZ", "…WXYZ"),
        ("123456789", "…6789"),
        ("12345678", "…"),
        ("", "…"),
    ],
)
def test_mask_secret_shows_at_most_the_last_four(value, shown):
    assert mask_secret(value) == shown
