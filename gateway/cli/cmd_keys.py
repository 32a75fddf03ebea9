"""``relay keys …``: create (the secret printed last, once), update, list, revoke."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cli.common import aliases, globs, pairs, parse_expiry, print_json, session
from gateway.db.tables import ApiKey
from gateway.manage import documents, keys, limits, tenants
from gateway.settings import Settings


async def create(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await tenants.get_tenant(db, args.tenant)
        new = await keys.create_key(
            db,
            tenant=tenant,
            secret_key=settings.secret_key,
            name=args.name,
            allow_custom_models=args.allow_custom_models,
            allowed_models=globs(args.models or ""),
            aliases=aliases(args.alias),
            expires_at=parse_expiry(args.expires),
            claude_code_profile=pairs(args.claude_code_profile or "", "--claude-code-profile"),
        )
        await _apply_limits(db, new.row, args)
    print(f"key {new.row.id} ({new.row.prefix}…) created for tenant {tenant.name}; the secret is shown once:")
    print(new.secret)
    return 0


async def _apply_limits(db: AsyncSession, row: ApiKey, args: argparse.Namespace) -> None:
    """Limit flags given on the command line; 0 removes a limit."""
    changes: dict[str, Any] = {}
    for flag in ("rpm", "tpm", "concurrency"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = value or None
    if args.budget is not None:
        changes["budget_usd"] = args.budget or None
    if args.budget_period is not None:
        changes["budget_period"] = args.budget_period
    await limits.set_key_limits(db, row, **changes)


def _key_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The ``keys.KEY_FIELDS`` the flags change; an empty value clears (see the help of ``keys update``)."""
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    if args.models is not None:
        changes["allowed_models"] = globs(args.models)
    if args.alias:
        changes["aliases"] = aliases(args.alias)
    if args.expires is not None:
        changes["expires_at"] = parse_expiry(args.expires)
    if args.claude_code_profile is not None:
        changes["claude_code_profile"] = pairs(args.claude_code_profile, "--claude-code-profile")
    if args.allow_custom_models is not None:
        changes["allow_custom_models"] = args.allow_custom_models
    return changes


async def update(args: argparse.Namespace, settings: Settings) -> int:
    changes = _key_changes(args)  # parsed before the database is touched: bad input changes nothing
    async with session(settings) as db:
        row = await keys.find_key(db, args.key)
        if changes:
            await keys.update_key(db, row, changes)
        await _apply_limits(db, row, args)
        budget = (
            "none"
            if row.budget_micro_usd is None
            else f"${row.budget_micro_usd / 1e6:g} ({row.budget_period or 'total'})"
        )
        summary = f"rpm {row.rpm_limit or '-'}, tpm {row.tpm_limit or '-'}, concurrency {row.concurrency_limit or '-'}"
    print(f"key {row.id} ({row.prefix}…): {summary}, budget {budget}")
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        rows = await keys.list_keys(db, tenant=await tenants.get_tenant(db, args.tenant))
    if args.json:
        print_json([documents.key_out(k) for k in rows])
        return 0
    for k in rows:
        state = documents.key_state(k)
        print(
            f"{k.id}  {k.prefix}…  {state:8} {k.name or '-'}  custom-models={'on' if k.allow_custom_models else 'off'}"
        )
    return 0


async def revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        row = await keys.revoke_key(db, args.key)
    print(f"key {row.id} ({row.prefix}…) revoked")
    return 0
