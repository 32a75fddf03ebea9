"""Argument parsing for every ``relay`` sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def _lazy(noun: str, name: str) -> Callable[..., Any]:
    """The handler ``cmd_<noun>.<name>``, imported only when it runs: ``relay --help`` and argument errors
    load none of the database stack, and a command loads only its own noun's services (``tenants list``
    needs no HTTP client, converter or catalog)."""

    def handler(*args: Any) -> Any:
        return getattr(importlib.import_module(f"gateway.cli.cmd_{noun}"), name)(*args)

    handler.__name__ = f"{noun}.{name}"
    return handler


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line like every other error (``relay: error: …``, status 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"relay: error: {message} (see: {self.prog} --help)\n")
        sys.exit(2)


def _scope(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--tenant", metavar="T", help="the tenant that owns it")
    group.add_argument("--platform", action="store_true", help="owned by the platform (built-in)")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="a JSON array, with the management API's field names")


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


def _model_options(p: argparse.ArgumentParser, *, update: bool) -> None:
    """The options of ``models add``; for ``update`` all optional, unset meaning "keep"."""
    price = None if update else 0.0
    p.add_argument("--upstream", required=not update)
    p.add_argument("--upstream-model", required=not update, metavar="ID")
    p.add_argument("--input-price", type=float, default=price, metavar="USD_PER_MTOK")
    p.add_argument("--output-price", type=float, default=price, metavar="USD_PER_MTOK")
    same = "" if update else " (default: the input price)"
    p.add_argument("--cache-read-price", type=float, metavar="USD_PER_MTOK", help=f"cached input read{same}")
    p.add_argument("--cache-write-price", type=float, metavar="USD_PER_MTOK", help=f"cached input written{same}")
    clear = " (0 removes it)" if update else ""
    p.add_argument("--max-output-tokens", type=int, help=f"cap on output tokens{clear}")
    p.add_argument("--context-window", type=int, help=f"context window in tokens{clear}")
    more = "; replaces the list, --fallback '' empties it" if update else ""
    p.add_argument("--fallback", action="append", default=[], metavar="MODEL", help=f"tried in order{more}")
    more = "; replaces them, '{}' removes them" if update else ""
    p.add_argument("--profile", help=f"capability profile overrides as a JSON object{more}")


def build_parser() -> argparse.ArgumentParser:
    about = "Relay: one sk- key, any model, at the Messages, Chat Completions and Responses doors."
    parser = Parser(prog="relay", description=about)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--host", help="bind address (default RELAY_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default RELAY_PORT or 8080)")
    p.add_argument("--workers", type=int, help="worker processes (default RELAY_WORKERS or 1)")
    p.set_defaults(handler=_lazy("server", "serve"))

    p = sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    p.set_defaults(handler=_lazy("server", "migrate"))

    for add_noun in (_tenants, _users, _upstreams, _models, _catalog, _providers, _keys, _tokens, _usage, _webhooks):
        add_noun(sub)
    return parser


Sub = Any
"""The ``add_subparsers`` action (argparse keeps its type private)."""


def _tenants(sub: Sub) -> None:
    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(metavar="ACTION")
    p = tenants.add_parser("create", help="create a tenant")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("tenants", "create"))
    p = tenants.add_parser("update", help="set a tenant's budget (all its keys together)")
    p.add_argument("name")
    p.add_argument("--budget", type=float, metavar="USD", help="spending limit in USD (0 removes it)")
    p.add_argument("--budget-period", choices=["month", "total"], default="total")
    p.set_defaults(handler=_lazy("tenants", "update"))
    p = tenants.add_parser("list", help="list tenants")
    _json(p)
    p.set_defaults(handler=_lazy("tenants", "list_"))
    text = (
        "delete a tenant with its users, keys, tokens, upstreams, models and held conversations "
        "(its usage history and audit log are kept); refused while it has live keys unless --force"
    )
    p = tenants.add_parser("delete", help=text, description=text)
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="even while the tenant has live (unrevoked, unexpired) keys")
    p.set_defaults(handler=_lazy("tenants", "delete"))


def _users(sub: Sub) -> None:
    users = sub.add_parser("users", help="manage users").add_subparsers(metavar="ACTION")
    p = users.add_parser("create", help="create a user (password from a prompt or --password-stdin)")
    p.add_argument("email")
    p.add_argument("--tenant", required=True)
    p.add_argument("--role", choices=["owner", "admin", "member"], default="member")
    p.add_argument("--platform-admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(handler=_lazy("users", "create"))
    p = users.add_parser("list", help="list users (of every tenant unless --tenant)")
    p.add_argument("--tenant", metavar="T")
    _json(p)
    p.set_defaults(handler=_lazy("users", "list_"))
    one_tenant = "the user's tenant (required when the address has accounts in several)"
    p = users.add_parser("delete", help="delete a user (a tenant keeps one owner, the platform one platform admin)")
    p.add_argument("email")
    p.add_argument("--tenant", metavar="T", help=one_tenant)
    p.set_defaults(handler=_lazy("users", "delete"))
    text = (
        "print a one-time password (the last line) that must be changed at the next sign-in, or set the one "
        "read with --password-stdin; either way the user is signed out everywhere"
    )
    p = users.add_parser("reset-password", help=text, description=text)
    p.add_argument("email")
    p.add_argument("--tenant", metavar="T", help=one_tenant)
    p.add_argument("--password-stdin", action="store_true", help="set the password read from standard input")
    p.set_defaults(handler=_lazy("users", "reset_password"))


def _upstreams(sub: Sub) -> None:
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
    p.set_defaults(handler=_lazy("upstreams", "add"))
    p = upstreams.add_parser("list", help="list upstreams (every owner's unless --tenant or --platform)")
    _scope(p, required=False)
    _json(p)
    p.set_defaults(handler=_lazy("upstreams", "list_"))
    p = upstreams.add_parser("show", help="an upstream as JSON (its key: whether one is stored, last 4 characters)")
    p.add_argument("name")
    _scope(p)
    p.set_defaults(handler=_lazy("upstreams", "show"))
    p = upstreams.add_parser("update", help="change an upstream; options not given keep their value")
    p.add_argument("name")
    _scope(p)
    p.add_argument("--rename", metavar="NAME", help="a new name")
    p.add_argument("--dialect", choices=["openai", "anthropic"])
    p.add_argument("--base-url")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key-stdin", action="store_true", help="a new upstream key from standard input")
    key.add_argument("--api-key-env", metavar="VAR", help="a new upstream key from this environment variable")
    key.add_argument("--remove-api-key", action="store_true", help="store no key any more")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="replaces the extra headers; '' removes them",
    )
    p.add_argument("--timeout", type=float, help="seconds to the first byte and between chunks (0: the default)")
    p.add_argument("--profile", help="capability profile as a JSON object; replaces it, '{}' removes it")
    p.set_defaults(handler=_lazy("upstreams", "update"))
    text = "delete an upstream; refused while models use it (they are named), unless --force deletes them too"
    p = upstreams.add_parser("delete", help=text, description=text)
    p.add_argument("name")
    _scope(p)
    p.add_argument("--force", action="store_true", help="delete the models that use it too")
    p.set_defaults(handler=_lazy("upstreams", "delete"))
    _upstream_keys(upstreams.add_parser("keys", help="an upstream's key pool").add_subparsers(metavar="ACTION"))


def _upstream_keys(keys: Sub) -> None:
    """``relay upstreams keys …``: the credentials of one upstream's pool (``gateway.manage.upstream_keys``)."""

    def key_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--weight", type=int, metavar="N", help="share among keys of its priority (default 1)")
        p.add_argument("--priority", type=int, metavar="N", help="lower is used first (default 1)")
        p.add_argument("--name", metavar="NAME", help="a label (default key-N)")
        p.add_argument("--rpm", type=int, metavar="N", help="this key's own requests per minute")
        p.add_argument("--tpm", type=int, metavar="N", help="this key's own tokens per minute")

    p = keys.add_parser("add", help="add a key to an upstream's pool")
    p.add_argument("upstream")
    _scope(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--api-key-stdin", action="store_true", help="read the upstream key from standard input")
    source.add_argument("--api-key-env", metavar="VAR", help="read the upstream key from this environment variable")
    key_options(p)
    p.set_defaults(handler=_lazy("upstream_keys", "add"))
    p = keys.add_parser("list", help="the keys of an upstream's pool, with their state")
    p.add_argument("upstream")
    _scope(p)
    _json(p)
    p.set_defaults(handler=_lazy("upstream_keys", "list_"))
    p = keys.add_parser("update", help="change a key's weight, priority, limits (0 removes one) or name")
    p.add_argument("upstream")
    p.add_argument("key_id", metavar="KEY_ID")
    _scope(p)
    key_options(p)
    p.set_defaults(handler=_lazy("upstream_keys", "update"))
    for verb, text in (
        ("remove", "remove a key from the pool"),
        ("enable", "put a disabled key back in the pool"),
        ("disable", "take a key out of the pool until enabled"),
    ):
        p = keys.add_parser(verb, help=text, description=text)
        p.add_argument("upstream")
        p.add_argument("key_id", metavar="KEY_ID")
        _scope(p)
        if verb == "disable":
            p.add_argument("--reason", default="disabled by an operator", help="shown beside the key")
        p.set_defaults(handler=_lazy("upstream_keys", verb))


def _models(sub: Sub) -> None:
    models = sub.add_parser("models", help="manage models").add_subparsers(metavar="ACTION")
    p = models.add_parser("add", help="add a model on an upstream")
    p.add_argument("name", help="the public model name clients send")
    _scope(p)
    _model_options(p, update=False)
    p.set_defaults(handler=_lazy("models", "add"))
    p = models.add_parser("update", help="change a model; options not given keep their value")
    p.add_argument("name")
    _scope(p)
    p.add_argument("--rename", metavar="NAME", help="a new public name")
    _model_options(p, update=True)
    p.add_argument("--enabled", action=argparse.BooleanOptionalAction, help="offer the model to clients, or not")
    p.set_defaults(handler=_lazy("models", "update"))
    p = models.add_parser("delete", help="delete a model")
    p.add_argument("name")
    _scope(p)
    p.set_defaults(handler=_lazy("models", "delete"))
    p = models.add_parser("show", help="show a model, its upstream and its effective capability profile")
    p.add_argument("name")
    _scope(p)
    p.set_defaults(handler=_lazy("models", "show"))
    p = models.add_parser("test", help="probe the model's upstream (completion, streaming, tools, images, reasoning)")
    p.add_argument("name")
    _scope(p)
    p.add_argument("--no-save", action="store_true", help="only report; keep the stored capability profile")
    p.set_defaults(handler=_lazy("models", "test"))
    p = models.add_parser("list", help="list models")
    _scope(p)
    _json(p)
    p.set_defaults(handler=_lazy("models", "list_"))


def _catalog(sub: Sub) -> None:
    catalog = sub.add_parser("catalog", help="the built-in model catalog").add_subparsers(metavar="ACTION")
    p = catalog.add_parser("list", help="providers and models of the built-in catalog, and which are on")
    p.add_argument("--provider", help="only this provider")
    p.add_argument("--json", action="store_true", help="the document of GET /api/v1/catalog")
    p.set_defaults(handler=_lazy("catalog", "catalog_list"))
    p = catalog.add_parser("price", help="override a catalog model's prices (USD per million tokens)")
    p.add_argument("model")
    p.add_argument("--input-price", type=float, metavar="USD_PER_MTOK")
    p.add_argument("--output-price", type=float, metavar="USD_PER_MTOK")
    p.add_argument("--cache-read-price", type=float, metavar="USD_PER_MTOK")
    p.add_argument("--cache-write-price", type=float, metavar="USD_PER_MTOK")
    p.set_defaults(handler=_lazy("catalog", "catalog_price"))


def _providers(sub: Sub) -> None:
    providers = sub.add_parser("providers", help="turn built-in providers on and off").add_subparsers(metavar="ACTION")
    p = providers.add_parser("enable", help="turn a catalog provider on (its models become visible)")
    p.add_argument("name")
    _secret_source(p)
    p.add_argument("--base-url", help="another endpoint for this provider (e.g. a regional one)")
    p.set_defaults(handler=_lazy("catalog", "providers_enable"))
    p = providers.add_parser("disable", help="turn a catalog provider off")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("catalog", "providers_disable"))
    p = providers.add_parser("list", help="every catalog provider, on or off, and where its key comes from")
    _json(p)
    p.set_defaults(handler=_lazy("catalog", "providers_list"))


def _keys(sub: Sub) -> None:
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
    p.set_defaults(handler=_lazy("keys", "create"))
    text = (
        "change a key: options not given keep their value; an empty value clears "
        "(--models '' allows every model, --alias '' removes the aliases, --expires never, 0 removes a limit)"
    )
    p = keys.add_parser("update", help=text, description=text)
    p.add_argument("key", metavar="KEY_ID_OR_PREFIX")
    p.add_argument("--name", help="a new name ('' for none)")
    p.add_argument("--models", metavar="GLOB,…", help="allowed models (globs), comma-separated; '' allows every model")
    p.add_argument(
        "--alias", action="append", default=[], metavar="PATTERN=MODEL", help="replaces the aliases; '' removes them"
    )
    p.add_argument("--expires", metavar="ISO8601", help="a new expiry; 'never' removes it")
    p.add_argument("--claude-code-profile", metavar="opus=M,sonnet=M,haiku=M", help="replaces it; '' removes it")
    p.add_argument("--allow-custom-models", action=argparse.BooleanOptionalAction)
    _limit_options(p)
    p.set_defaults(handler=_lazy("keys", "update"))
    p = keys.add_parser("list", help="list a tenant's keys")
    p.add_argument("--tenant", required=True)
    _json(p)
    p.set_defaults(handler=_lazy("keys", "list_"))
    p = keys.add_parser("revoke", help="revoke a key (within seconds on every worker)")
    p.add_argument("key", metavar="KEY_ID_OR_PREFIX")
    p.set_defaults(handler=_lazy("keys", "revoke"))


def _tokens(sub: Sub) -> None:
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
    p.set_defaults(handler=_lazy("tokens", "create"))
    p = tokens.add_parser("list", help="list management tokens")
    _scope(p)
    _json(p)
    p.set_defaults(handler=_lazy("tokens", "list_"))
    p = tokens.add_parser("revoke", help="revoke a management token (at once)")
    p.add_argument("token", metavar="ID_OR_PREFIX")
    p.set_defaults(handler=_lazy("tokens", "revoke"))


def _usage(sub: Sub) -> None:
    p = sub.add_parser("usage", help="a tenant's usage: requests, tokens of each kind and cost")
    p.add_argument("--tenant", required=True)
    p.add_argument("--key", metavar="KEY_ID_OR_PREFIX", help="only this key")
    p.add_argument("--model", help="only this public model name")
    p.add_argument("--since", metavar="ISO", help="date or date-time, inclusive (default: start of this UTC month)")
    p.add_argument("--until", metavar="ISO", help="date or date-time, exclusive (default: now)")
    p.add_argument("--by", choices=["day", "model", "key"], default="day", help="rows by (default day)")
    p.add_argument("--json", action="store_true", help="one JSON document (totals with the ledger's field names)")
    p.set_defaults(handler=_lazy("usage", "report"))


def _webhooks(sub: Sub) -> None:
    hooks = sub.add_parser("webhooks", help="alert webhooks (budgets, disabled keys, failing upstreams)")
    actions = hooks.add_subparsers(metavar="ACTION")
    p = actions.add_parser("add", help="add a webhook; its signing secret is the last line of output, shown once")
    _scope(p)
    p.add_argument("url")
    p.add_argument("--events", metavar="E1,E2", help="the events it receives (default: all)")
    p.set_defaults(handler=_lazy("webhooks", "add"))
    p = actions.add_parser("list", help="list webhooks (every owner's unless --tenant or --platform)")
    _scope(p, required=False)
    _json(p)
    p.set_defaults(handler=_lazy("webhooks", "list_"))
    p = actions.add_parser("remove", help="remove a webhook")
    p.add_argument("webhook_id", metavar="ID")
    p.set_defaults(handler=_lazy("webhooks", "remove"))
    p = actions.add_parser("test", help="send a signed test event now and print the receiver's answer")
    p.add_argument("webhook_id", metavar="ID")
    p.set_defaults(handler=_lazy("webhooks", "test"))
