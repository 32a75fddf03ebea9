"""``relay tenants …``: create, list, set a budget, delete."""

from __future__ import annotations

import argparse

from gateway.cli.common import print_json, session
from gateway.manage import documents, limits, tenants
from gateway.settings import Settings


async def create(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await tenants.create_tenant(db, args.name)
    print(f"tenant {tenant.name} created (id {tenant.id})")
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        rows = await tenants.list_tenants(db)
    if args.json:
        print_json([documents.tenant_out(t) for t in rows])
        return 0
    for t in rows:
        print(f"{t.id}  {t.name}")
    return 0


async def update(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await tenants.get_tenant(db, args.name)
        await limits.set_tenant_budget(db, tenant, budget_usd=args.budget or None, budget_period=args.budget_period)
    print(f"tenant {tenant.name}: budget " + (f"${args.budget:g} ({args.budget_period})" if args.budget else "none"))
    return 0


async def delete(args: argparse.Namespace, settings: Settings) -> int:
    """See ``tenants.delete_tenant`` for what goes and what stays."""
    async with session(settings) as db:
        tenant = await tenants.get_tenant(db, args.name)
        await tenants.delete_tenant(db, tenant, force=args.force)
    print(f"tenant {tenant.name} deleted (its usage history and audit log are kept)")
    return 0
