"""The built-in model catalog: well-known providers and their models, shipped as ``builtin.toml``.

The operator turns a provider on by giving its credential (``RELAY_PROVIDER_<NAME>_API_KEY``);
a keyless provider (a local Ollama) is turned on with ``RELAY_PROVIDER_<NAME>_ENABLED=1``.
Only models of enabled providers are visible.

Pure: the only I/O is reading the TOML file. Every entry is validated on load and a bad one raises
:class:`CatalogError` naming the provider, the model and the field.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from gateway.domain import Dialect, Price

__all__ = [
    "CAPABILITIES",
    "PROFILE_KEYS",
    "CatalogError",
    "CatalogModel",
    "CatalogProvider",
    "effective_profile",
    "enabled_providers",
    "load_catalog",
    "provider_enabled_env",
    "provider_key_env",
]

CAPABILITIES = frozenset({"tools", "vision", "pdf", "reasoning", "streaming", "prompt_caching", "json_schema"})

_BOOL_PROFILE_KEYS = frozenset(
    {
        "supports_stream_options",
        "supports_top_k",
        "supports_responses",
        "supports_threads",
        "supports_parallel_tool_calls_param",
        "supports_image_input",
        "supports_pdf_input",
        "requires_reasoning_replay",
        "strip_cache_control",
        "supports_sampling_params",
    }
)
_CHOICE_PROFILE_KEYS: Mapping[str, tuple[str, ...]] = {
    "max_tokens_field": ("max_tokens", "max_completion_tokens"),
    "reasoning_dialect": ("none", "deepseek", "openrouter", "openai", "qwen"),
}
_INT_PROFILE_KEYS = frozenset({"max_stop_sequences"})
PROFILE_KEYS = _BOOL_PROFILE_KEYS | _CHOICE_PROFILE_KEYS.keys() | _INT_PROFILE_KEYS
"""The capability-profile keys a catalog entry may override (a subset of ``CapabilityProfile``)."""

_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PUBLIC_NAME = re.compile(r"[^\s\x00-\x1f\x7f]+")
_PROVIDER_KEYS = frozenset({"display_name", "dialect", "base_url", "requires_key", "docs_url", "profile", "models"})
_PROVIDER_REQUIRED = _PROVIDER_KEYS - {"profile"}
_PRICE_KEYS = ("input_price", "output_price", "cache_read_price", "cache_write_price")
_MODEL_KEYS = frozenset(
    {"name", "upstream_model", *_PRICE_KEYS, "context_window", "max_output_tokens"}
    | {"capabilities", "profile", "aliases"}
)
_MODEL_REQUIRED = _MODEL_KEYS - {"profile", "aliases"}
_TRUTHY = frozenset({"1", "true", "yes", "on"})


class CatalogError(ValueError):
    """A catalog entry is malformed; the message names the provider, model and field."""


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One model as clients see it (``name``, ``aliases``) and as the upstream knows it."""

    name: str
    upstream_model: str
    input_price: float
    output_price: float
    cache_read_price: float
    cache_write_price: float
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    profile: Mapping[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def price(self) -> Price:
        """The four prices (USD per million tokens) as the metering record."""
        return Price(self.input_price, self.output_price, self.cache_read_price, self.cache_write_price)

    @property
    def public_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class CatalogProvider:
    """A provider endpoint and its models; ``base_url`` of the openai dialect includes the version path."""

    name: str
    display_name: str
    dialect: Dialect
    base_url: str
    requires_key: bool
    docs_url: str
    profile: Mapping[str, Any]
    models: tuple[CatalogModel, ...]

    @property
    def key_env(self) -> str:
        return provider_key_env(self.name)

    def model(self, public_name: str) -> CatalogModel | None:
        """The model answering to ``public_name`` (its name or one of its aliases)."""
        return next((m for m in self.models if public_name in m.public_names), None)


def provider_key_env(name: str) -> str:
    """``RELAY_PROVIDER_<NAME>_API_KEY``: the variable whose value enables provider ``name``."""
    return f"RELAY_PROVIDER_{name.upper()}_API_KEY"


def provider_enabled_env(name: str) -> str:
    """``RELAY_PROVIDER_<NAME>_ENABLED``: turns on a provider that needs no key."""
    return f"RELAY_PROVIDER_{name.upper()}_ENABLED"


def enabled_providers(catalog: Mapping[str, CatalogProvider], env: Mapping[str, str]) -> list[str]:
    """Names of the providers ``env`` turns on, in catalog order.

    A provider is on when its key variable is set and non-blank; one with ``requires_key = false``
    is also on when ``RELAY_PROVIDER_<NAME>_ENABLED`` is ``1`` (or true/yes/on).
    """
    out: list[str] = []
    for name, provider in catalog.items():
        has_key = bool(env.get(provider_key_env(name), "").strip())
        switched_on = env.get(provider_enabled_env(name), "").strip().lower() in _TRUTHY
        if has_key or (not provider.requires_key and switched_on):
            out.append(name)
    return out


def effective_profile(provider: CatalogProvider, model: CatalogModel) -> dict[str, Any]:
    """The provider's profile overrides with the model's on top (for ``CapabilityProfile.for_dialect``)."""
    return {**provider.profile, **model.profile}


def load_catalog(path: Path | None = None) -> dict[str, CatalogProvider]:
    """Parse and validate a catalog file; ``None`` is the shipped ``builtin.toml`` (parsed once)."""
    if path is None:
        return dict(_builtin())
    return _load(path.read_bytes(), str(path))


@functools.lru_cache(maxsize=1)
def _builtin() -> Mapping[str, CatalogProvider]:
    data = resources.files(__name__).joinpath("builtin.toml").read_bytes()
    return MappingProxyType(_load(data, "builtin.toml"))


def _load(raw: bytes, source: str) -> dict[str, CatalogProvider]:
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    _no_unknown_keys(doc, frozenset({"providers"}), f"{source}:")
    providers = doc.get("providers")
    if not isinstance(providers, dict) or not providers:
        raise CatalogError(f"{source}: 'providers' must be a non-empty table of provider tables")
    seen: dict[str, str] = {}
    catalog: dict[str, CatalogProvider] = {}
    for name, table in providers.items():
        catalog[name] = _provider(name, table, seen)
    return catalog


def _provider(name: str, table: Any, seen: dict[str, str]) -> CatalogProvider:
    where = f"provider {name!r}:"
    if not _PROVIDER_NAME.fullmatch(name):
        raise CatalogError(f"{where} the name must be lower-case letters, digits and '_' (starting with a letter)")
    if not isinstance(table, dict):
        raise CatalogError(f"{where} must be a table")
    _no_unknown_keys(table, _PROVIDER_KEYS, where)
    _required(table, _PROVIDER_REQUIRED, where)
    dialect_value = table["dialect"]
    if dialect_value not in {d.value for d in Dialect}:
        raise CatalogError(f"{where} field 'dialect' must be one of {', '.join(d.value for d in Dialect)}")
    dialect = Dialect(dialect_value)
    base_url = _url(table["base_url"], f"{where} field 'base_url'")
    if base_url.endswith("/"):
        raise CatalogError(f"{where} field 'base_url' must not end with '/'")
    if dialect is Dialect.ANTHROPIC and urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        raise CatalogError(f"{where} field 'base_url' of the anthropic dialect must not include the '/v1' path")
    requires_key = table["requires_key"]
    if not isinstance(requires_key, bool):
        raise CatalogError(f"{where} field 'requires_key' must be true or false")
    models = table["models"]
    if not isinstance(models, list) or not models:
        raise CatalogError(f"{where} field 'models' must be a non-empty array of tables ([[providers.{name}.models]])")
    return CatalogProvider(
        name=name,
        display_name=_text(table["display_name"], f"{where} field 'display_name'"),
        dialect=dialect,
        base_url=base_url,
        requires_key=requires_key,
        docs_url=_url(table["docs_url"], f"{where} field 'docs_url'"),
        profile=_profile(table.get("profile", {}), where),
        models=tuple(_model(name, index, entry, seen) for index, entry in enumerate(models)),
    )


def _model(provider: str, index: int, entry: Any, seen: dict[str, str]) -> CatalogModel:
    label = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else f"#{index + 1}"
    where = f"provider {provider!r} model {label!r}:"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} must be a table")
    _no_unknown_keys(entry, _MODEL_KEYS, where)
    _required(entry, _MODEL_REQUIRED, where)
    name = _public_name(entry["name"], f"{where} field 'name'")
    aliases_value = entry.get("aliases", [])
    if not isinstance(aliases_value, list):
        raise CatalogError(f"{where} field 'aliases' must be an array of strings")
    aliases = tuple(_public_name(a, f"{where} field 'aliases'") for a in aliases_value)
    for public, field_name in ((name, "name"), *((a, "aliases") for a in aliases)):
        if public in seen:
            raise CatalogError(
                f"{where} field {field_name!r}: public name {public!r} is already taken by {seen[public]}"
            )
        seen[public] = f"provider {provider!r} model {name!r}"
    prices = {key: _price(entry[key], f"{where} field {key!r}") for key in _PRICE_KEYS}
    context_window = _positive_int(entry["context_window"], f"{where} field 'context_window'")
    max_output = _positive_int(entry["max_output_tokens"], f"{where} field 'max_output_tokens'")
    if max_output > context_window:
        raise CatalogError(f"{where} field 'max_output_tokens' exceeds 'context_window' ({context_window})")
    return CatalogModel(
        name=name,
        upstream_model=_text(entry["upstream_model"], f"{where} field 'upstream_model'"),
        input_price=prices["input_price"],
        output_price=prices["output_price"],
        cache_read_price=prices["cache_read_price"],
        cache_write_price=prices["cache_write_price"],
        context_window=context_window,
        max_output_tokens=max_output,
        capabilities=_capabilities(entry["capabilities"], f"{where} field 'capabilities'"),
        profile=_profile(entry.get("profile", {}), where),
        aliases=aliases,
    )


def _profile(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where} field 'profile' must be a table")
    out: dict[str, Any] = {}
    for key, item in value.items():
        field_name = f"{where} field 'profile.{key}'"
        if key in _BOOL_PROFILE_KEYS:
            if not isinstance(item, bool):
                raise CatalogError(f"{field_name} must be true or false")
        elif key in _CHOICE_PROFILE_KEYS:
            if item not in _CHOICE_PROFILE_KEYS[key]:
                raise CatalogError(f"{field_name} must be one of {', '.join(_CHOICE_PROFILE_KEYS[key])}")
        elif key in _INT_PROFILE_KEYS:
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise CatalogError(f"{field_name} must be a non-negative integer")
        else:
            raise CatalogError(f"{field_name} is not a known profile key (known: {', '.join(sorted(PROFILE_KEYS))})")
        out[key] = item
    return MappingProxyType(out)


def _capabilities(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{where} must be an array of strings")
    unknown = sorted(set(value) - CAPABILITIES)
    if unknown:
        raise CatalogError(f"{where} has unknown capabilities {unknown} (known: {', '.join(sorted(CAPABILITIES))})")
    if len(set(value)) != len(value):
        raise CatalogError(f"{where} lists a capability twice")
    return frozenset(value)


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CatalogError(f"{where} must be a number (USD per million tokens)")
    if value < 0:
        raise CatalogError(f"{where} must not be negative")
    return float(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"{where} must be a positive integer")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where} must be a non-empty string")
    return value


def _public_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _PUBLIC_NAME.fullmatch(value):
        raise CatalogError(f"{where} must be a non-empty string without spaces")
    return value


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CatalogError(f"{where} must be a string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CatalogError(f"{where} must be an http(s) URL, got {value!r}")
    return value


def _no_unknown_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CatalogError(f"{where} unknown field(s) {', '.join(repr(k) for k in unknown)}")


def _required(table: Mapping[str, Any], required: frozenset[str], where: str) -> None:
    missing = sorted(required - set(table))
    if missing:
        raise CatalogError(f"{where} missing field(s) {', '.join(repr(k) for k in missing)}")
