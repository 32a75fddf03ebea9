"""Argument parsing for every ``relay`` sub-command."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any


def _lazy(name: str) -> Callable[..., Any]:
    """The handler ``commands.<name>``, imported only when it runs: ``relay --help`` and argument errors
    need none of the database, HTTP and conversion stack that the commands load (1.8 s of CPU before)."""

    def handler(*args: Any) -> Any:
        return getattr(importlib.import_module("gateway.cli.commands"), name)(*args)

    handler.__name__ = name
    return handler


def _scope(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--tenant", metavar="T", help="the tenant that owns it")
    group.add_argument("--platform", action="store_true", help="owned by the platform (built-in)")


def _secret_source(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--api-key-stdin", action="store_true", help="read the upstream key from standard input")
    group.add_argument("--api-key-env", metavar="VAR", help="read the upstream key from this environment variable")


def _limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpm", type=int, metavar="N", help="at most N requests in any 60 s")
    p.add_argument("--tpm", type=int, metavar="N", help="at most N tokens in any 60 s")
    p.add_argument("--concurrency", type=int, metavar="N", help="at most N requests in flight")
    p.add_argument("--budget", type=float, metavar="USD", help="spending limit in USD")
    p.add_argument("--budget-period", choices=["month", "total"], help="month: resets each UTC month (default total)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="Relay: one sk- key, any model, either API dialect.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--host", help="bind address (default RELAY_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default RELAY_PORT or 8080)")
    p.add_argument("--workers", type=int, help="worker processes (default RELAY_WORKERS or 1)")
    p.set_defaults(handler=_lazy("serve"))

    p = sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    p.set_defaults(handler=_lazy("migrate_db"))

    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(metavar="ACTION")
    p = tenants.add_parser("create", help="create a tenant")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("tenants_create"))
    p = tenants.add_parser("update", help="set a tenant's budget (all its keys together)")
    p.add_argument("name")
    p.add_argument("--budget", type=float, metavar="USD", help="spending limit in USD (0 removes it)")
    p.add_argument("--budget-period", choices=["month", "total"], default="total")
    p.set_defaults(handler=_lazy("tenants_update"))
    p = tenants.add_parser("list", help="list tenants")
    p.set_defaults(handler=_lazy("tenants_list"))

    users = sub.add_parser("users", help="manage users").add_subparsers(metavar="ACTION")
    p = users.add_parser("create", help="create a user (password from a prompt or --password-stdin)")
    p.add_argument("email")
    p.add_argument("--tenant", required=True)
    p.add_argument("--role", choices=["owner", "admin", "member"], default="member")
    p.add_argument("--platform-admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(handler=_lazy("users_create"))

    upstreams = sub.add_parser("upstreams", help="manage upstreams").add_subparsers(metavar="ACTION")
    p = upstreams.add_parser("add", help="add an upstream (provider endpoint)")
    p.add_argument("name")
    _scope(p)
    p.add_argument("--dialect", required=True, choices=["openai", "anthropic"])
    p.add_argument(
        "--base-url", required=True, help="openai: include /v1 (https://api.deepseek.com/v1); anthropic: not"
    )
    _secret_source(p)
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="extra header sent upstream")
    p.add_argument("--timeout", type=float, help="seconds to the first byte and between chunks")
    p.add_argument("--profile", help="capability profile as a JSON object")
    p.set_defaults(handler=_lazy("upstreams_add"))

    models = sub.add_parser("models", help="manage models").add_subparsers(metavar="ACTION")
    p = models.add_parser("add", help="add a model on an upstream")
    p.add_argument("name", help="the public model name clients send")
    _scope(p)
    p.add_argument("--upstream", required=True)
    p.add_argument("--upstream-model", required=True, metavar="ID")
    p.add_argument("--input-price", type=float, default=0.0, metavar="USD_PER_MTOK")
    p.add_argument("--output-price", type=float, default=0.0, metavar="USD_PER_MTOK")
    p.add_argument("--cache-read-price", type=float, default=0.0, metavar="USD_PER_MTOK")
    p.add_argument("--cache-write-price", type=float, default=0.0, metavar="USD_PER_MTOK")
    p.add_argument("--max-output-tokens", type=int)
    p.add_argument("--context-window", type=int)
    p.add_argument("--fallback", action="append", default=[], metavar="MODEL")
    p.add_argument("--profile", help="capability profile overrides as a JSON object")
    p.set_defaults(handler=_lazy("models_add"))
    p = models.add_parser("show", help="show a model, its upstream and its effective capability profile")
    p.add_argument("name")
    _scope(p)
    p.set_defaults(handler=_lazy("models_show"))
    p = models.add_parser("test", help="probe the model's upstream (completion, streaming, tools, images, reasoning)")
    p.add_argument("name")
    _scope(p)
    p.add_argument("--no-save", action="store_true", help="only report; keep the stored capability profile")
    p.set_defaults(handler=_lazy("models_test"))
    p = models.add_parser("list", help="list models")
    _scope(p)
    p.set_defaults(handler=_lazy("models_list"))

    catalog = sub.add_parser("catalog", help="the built-in model catalog").add_subparsers(metavar="ACTION")
    p = catalog.add_parser("list", help="providers and models of the built-in catalog, and which are on")
    p.add_argument("--provider", help="only this provider")
    p.set_defaults(handler=_lazy("catalog_list"))
    p = catalog.add_parser("price", help="override a catalog model's prices (USD per million tokens)")
    p.add_argument("model")
    p.add_argument("--input-price", type=float, metavar="USD_PER_MTOK")
    p.add_argument("--output-price", type=float, metavar="USD_PER_MTOK")
    p.add_argument("--cache-read-price", type=float, metavar="USD_PER_MTOK")
    p.add_argument("--cache-write-price", type=float, metavar="USD_PER_MTOK")
    p.set_defaults(handler=_lazy("catalog_price"))

    providers = sub.add_parser("providers", help="turn built-in providers on and off").add_subparsers(metavar="ACTION")
    p = providers.add_parser("enable", help="turn a catalog provider on (its models become visible)")
    p.add_argument("name")
    _secret_source(p)
    p.add_argument("--base-url", help="another endpoint for this provider (e.g. a regional one)")
    p.set_defaults(handler=_lazy("providers_enable"))
    p = providers.add_parser("disable", help="turn a catalog provider off")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("providers_disable"))
    p = providers.add_parser("list", help="every catalog provider, on or off, and where its key comes from")
    p.set_defaults(handler=_lazy("providers_list"))

    keys = sub.add_parser("keys", help="manage sk- keys").add_subparsers(metavar="ACTION")
    p = keys.add_parser("create", help="create a key; its secret is the last line of output, shown once")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--allow-custom-models", action="store_true")
    p.add_argument("--models", metavar="GLOB,…", help="allowed models (globs), comma-separated")
    p.add_argument("--alias", action="append", default=[], metavar="PATTERN=MODEL")
    p.add_argument("--expires", metavar="ISO8601")
    p.add_argument(
        "--claude-code-profile",
        metavar="opus=M,sonnet=M,haiku=M",
        help="route the models Claude Code asks for, by family, to these models",
    )
    _limit_options(p)
    p.set_defaults(handler=_lazy("keys_create"))
    p = keys.add_parser("update", help="change a key's limits and budget (0 removes a limit)")
    p.add_argument("key", metavar="KEY_ID_OR_PREFIX")
    _limit_options(p)
    p.set_defaults(handler=_lazy("keys_update"))
    p = keys.add_parser("list", help="list a tenant's keys")
    p.add_argument("--tenant", required=True)
    p.set_defaults(handler=_lazy("keys_list"))
    p = keys.add_parser("revoke", help="revoke a key (within seconds on every worker)")
    p.add_argument("key", metavar="KEY_ID_OR_PREFIX")
    p.set_defaults(handler=_lazy("keys_revoke"))

    tokens = sub.add_parser("tokens", help="manage rlm- tokens of the JSON management API").add_subparsers(
        metavar="ACTION"
    )
    p = tokens.add_parser("create", help="create a management token; its secret is the last line, shown once")
    _scope(p)
    p.add_argument("--name", default="")
    p.add_argument(
        "--role",
        choices=["owner", "admin", "member"],
        default="admin",
        help="member reads; admin also manages upstreams, models and keys; owner also users (default admin)",
    )
    p.set_defaults(handler=_lazy("tokens_create"))
    p = tokens.add_parser("list", help="list management tokens")
    _scope(p)
    p.set_defaults(handler=_lazy("tokens_list"))
    p = tokens.add_parser("revoke", help="revoke a management token (at once)")
    p.add_argument("token", metavar="ID_OR_PREFIX")
    p.set_defaults(handler=_lazy("tokens_revoke"))

    p = sub.add_parser("usage", help="a tenant's usage: requests, tokens of each kind and cost")
    p.add_argument("--tenant", required=True)
    p.add_argument("--key", metavar="KEY_ID_OR_PREFIX", help="only this key")
    p.add_argument("--model", help="only this public model name")
    p.add_argument("--since", metavar="ISO", help="date or date-time, inclusive (default: start of this UTC month)")
    p.add_argument("--until", metavar="ISO", help="date or date-time, exclusive (default: now)")
    p.add_argument("--by", choices=["day", "model", "key"], default="day", help="rows by (default day)")
    p.add_argument("--json", action="store_true", help="one JSON document (totals with the ledger's field names)")
    p.set_defaults(handler=_lazy("usage_report"))
    return parser
