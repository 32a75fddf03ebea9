"""``relay models …``: add, update, delete, list, show, and test (a real probe of the upstream)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli.common import box, json_object, owner, owner_label, print_json, session
from gateway.errors import InvalidRequest
from gateway.manage import documents, upstreams
from gateway.settings import Settings


async def add(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        upstream = await upstreams.get_upstream(db, args.upstream, tenant=tenant)
        row = await upstreams.add_model(
            db,
            tenant=tenant,
            name=args.name,
            upstream=upstream,
            upstream_model=args.upstream_model,
            input_price=args.input_price,
            output_price=args.output_price,
            cache_read_price=args.cache_read_price,
            cache_write_price=args.cache_write_price,
            context_window=args.context_window,
            max_output_tokens=args.max_output_tokens,
            profile=json_object(args.profile, "--profile"),
            fallbacks=args.fallback,
        )
    print(f"model {row.name} -> {upstream.name}:{row.upstream_model}")
    return 0


_PRICES = ("input_price", "output_price", "cache_read_price", "cache_write_price")


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    """The fields the flags change (but the upstream, a name to look up): ``0`` clears a context window or
    output cap, ``--fallback ''`` the fallbacks, ``--profile '{}'`` the profile overrides."""
    changes: dict[str, Any] = {f: getattr(args, f) for f in _PRICES if getattr(args, f) is not None}
    if args.rename is not None:
        changes["name"] = args.rename
    if args.upstream_model is not None:
        changes["upstream_model"] = args.upstream_model
    for field in ("context_window", "max_output_tokens"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field) or None
    if args.fallback:
        changes["fallbacks"] = [] if args.fallback == [""] else args.fallback
    if args.profile is not None:
        changes["profile"] = json_object(args.profile, "--profile")
    if args.enabled is not None:
        changes["enabled"] = args.enabled
    return changes


async def update(args: argparse.Namespace, settings: Settings) -> int:
    changes = _changes(args)  # parsed before the database is touched: bad input changes nothing
    if not changes and args.upstream is None:
        raise InvalidRequest("nothing to change: give at least one option (see relay models update --help)")
    async with session(settings) as db:
        tenant = await owner(db, args)
        row, _ = await upstreams.get_model(db, args.name, tenant=tenant)
        if args.upstream is not None:
            changes["upstream_id"] = (await upstreams.get_upstream(db, args.upstream, tenant=tenant)).id
        row, up = await upstreams.update_model(db, row, changes)
    fields = ", ".join(sorted(changes))
    print(f"model {row.name} of {owner_label(tenant)} -> {up.name}:{row.upstream_model} updated: {fields}")
    return 0


async def delete(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        row, _ = await upstreams.get_model(db, args.name, tenant=tenant)
        await upstreams.delete_model(db, row)
    print(f"model {row.name} of {owner_label(tenant)} deleted")
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        rows = await upstreams.list_models(db, tenant=await owner(db, args))
    if args.json:
        print_json([documents.model_out(m, u) for m, u in rows])
        return 0
    for model, up in rows:
        prices = f"in ${model.input_price}/MTok out ${model.output_price}/MTok"
        print(f"{model.name}\t{up.name}:{model.upstream_model}\t{up.dialect}\t{prices}")
    return 0


async def show(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        model, up = await upstreams.get_model(db, args.name, tenant=await owner(db, args))
    doc = {
        "name": model.name,
        "upstream": {"name": up.name, "dialect": up.dialect, "base_url": up.base_url},
        "upstream_model": model.upstream_model,
        "prices_usd_per_mtok": {
            "input": model.input_price,
            "output": model.output_price,
            "cache_read": model.cache_read_price,
            "cache_write": model.cache_write_price,
        },
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "fallbacks": model.fallbacks,
        "profile_overrides": {"upstream": up.profile, "model": model.profile},
        "profile": upstreams.effective_profile(up, model.profile, model.max_output_tokens).to_dict(),
    }
    print(json.dumps(doc, indent=2))
    return 0


async def test(args: argparse.Namespace, settings: Settings) -> int:
    """Probe a model's upstream for real; store what it learned in the model's capability profile."""
    from gateway.db.upstreams import load_upstream
    from gateway.probe import probe
    from gateway.ssrf import Allowlist, guarded_session
    from gateway.upstreams.client import create_session

    async with session(settings) as db:
        model, up = await upstreams.get_model(db, args.name, tenant=await owner(db, args))
        upstream = await load_upstream(db, up, box(settings))
        http = (
            create_session() if up.tenant_id is None else guarded_session(Allowlist.parse(settings.upstream_allowlist))
        )
        async with http:
            result = await probe(http, upstream, model.upstream_model)
        if not args.no_save:
            await upstreams.record_probe(db, model, result.to_dict())
    for check in result.checks:
        latency = f"{check.latency_ms} ms" if check.latency_ms is not None else ""
        print(f"{_mark(check.ok, check.name, check.detail)} {check.name:13} {latency:>8}  {check.detail}")
    if not result.ok:  # nothing was learned: the profile as it was would only bury the failure
        return 1
    learned = upstreams.effective_profile(up, model.profile, model.max_output_tokens).to_dict()
    print(json.dumps({"capabilities": result.capabilities, "learned": result.profile, "profile": learned}, indent=2))
    return 0


def _mark(ok: bool, name: str, detail: str) -> str:
    """As the admin UI marks a check: a model that shows no reasoning has none to show, which is no failure."""
    if ok:
        return "ok  "
    if detail == "skipped":
        return "skip"
    return "none" if name == "reasoning" else "FAIL"
