"""``relay catalog …`` and ``relay providers …``: the built-in catalog, its prices, its providers on and off."""

from __future__ import annotations

import argparse

from gateway.catalog import provider_enabled_env
from gateway.catalog.state import provider_states
from gateway.cli.common import box, print_json, read_upstream_key, session
from gateway.errors import InvalidRequest
from gateway.manage import documents, providers
from gateway.settings import Settings


async def providers_enable(args: argparse.Namespace, settings: Settings) -> int:
    api_key = read_upstream_key(args)
    async with session(settings) as db:
        row = await providers.enable_provider(
            db, box=box(settings), name=args.name, api_key=api_key, env=settings.provider_env, base_url=args.base_url
        )
    print(f"provider {row.name} enabled" + (" (key stored encrypted)" if api_key else ""))
    return 0


async def providers_disable(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        await providers.disable_provider(db, name=args.name)
    print(f"provider {args.name} disabled")
    return 0


async def providers_list(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        states = await provider_states(db, box(settings), settings.provider_env)
    if args.json:
        print_json([documents.provider_out(st) for st in states])
        return 0
    for st in states:
        p = st.provider
        print(
            f"{p.name:12} {'on ' if st.enabled else 'off'}  key: {st.key_source:11} {p.dialect.value:9} {st.base_url}"
        )
    return 0


async def catalog_list(args: argparse.Namespace, settings: Settings) -> int:
    """Like ``GET /api/v1/catalog`` with ``--json`` (the same document, ``--provider`` filtering it)."""
    async with session(settings) as db:
        states = await provider_states(db, box(settings), settings.provider_env)
    if args.provider:
        states = [st for st in states if st.provider.name == args.provider]
        if not states:
            raise InvalidRequest(f"--provider {args.provider!r}: not a catalog provider (see relay providers list)")
    if args.json:
        print_json(documents.Catalog(providers=[documents.catalog_provider_out(st) for st in states]))
        return 0
    for st in states:
        p = st.provider
        if p.requires_key:
            how = f"set {p.key_env} or run `relay providers enable {p.name} --api-key-env VAR`"
        else:
            how = f"set {provider_enabled_env(p.name)}=1 (no key needed) or run `relay providers enable {p.name}`"
        hint = "on" if st.enabled else f"off: {how}"
        print(f"{p.display_name} ({p.name}, {p.dialect.value}, {hint})")
        for m in p.models:
            price = st.price(m)
            cache = f"${price.cache_read:g}/${price.cache_write:g}"
            print(
                f"  {m.name:44} in ${price.input:g} out ${price.output:g} cache {cache}"
                f" per MTok  ctx {m.context_window}  max out {m.max_output_tokens}"
            )
    return 0


async def catalog_price(args: argparse.Namespace, settings: Settings) -> int:
    prices = {
        field: value
        for field, value in (
            ("input", args.input_price),
            ("output", args.output_price),
            ("cache_read", args.cache_read_price),
            ("cache_write", args.cache_write_price),
        )
        if value is not None
    }
    if not prices:
        raise InvalidRequest(
            "give at least one of --input-price, --output-price, --cache-read-price, --cache-write-price"
        )
    async with session(settings) as db:
        provider, model = await providers.set_price(db, model=args.model, prices=prices)
    print(f"prices of {model.name} ({provider}) overridden: " + ", ".join(f"{k} ${v:g}" for k, v in prices.items()))
    return 0
