"""``relay tokens …``: the ``rlm-`` tokens of the JSON management API (the secret printed last, once)."""

from __future__ import annotations

import argparse

from gateway.cli.common import owner, owner_label, print_json, session
from gateway.manage import documents, tokens
from gateway.settings import Settings


async def create(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        new = await tokens.create_token(
            db, tenant=tenant, secret_key=settings.secret_key, name=args.name, role=args.role
        )
    row = new.row
    print(f"management token {row.id} ({row.prefix}…, {row.role}) created for {owner_label(tenant)}; shown once:")
    print(new.secret)
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        rows = await tokens.list_tokens(db, tenant_id=tenant.id if tenant else None)
    if args.json:
        print_json([documents.token_out(t) for t in rows])
        return 0
    for t in rows:
        state = "revoked" if t.revoked_at else "active"
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        print(f"{t.id}  {t.prefix}…  {state:8} {t.role:7} {t.name or '-'}  last used {used}")
    return 0


async def revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        row = await tokens.revoke_token(db, args.token)
    print(f"management token {row.id} ({row.prefix}…) revoked")
    return 0
