"""``relay users …``: create, list, delete, reset a password (the rules live in ``manage.accounts``)."""

from __future__ import annotations

import argparse
import getpass
import sys

from gateway.cli.common import print_json, session, stdin_line, table, when
from gateway.errors import InvalidRequest
from gateway.manage import accounts, documents, tenants
from gateway.settings import Settings


def _read_new_password(args: argparse.Namespace) -> str:
    """From ``--password-stdin``, else asked twice at the terminal (none: refused, not a hung prompt)."""
    if args.password_stdin:
        return stdin_line("--password-stdin")
    if not sys.stdin.isatty():
        raise InvalidRequest("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise InvalidRequest("passwords do not match")
    return first


async def create(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_new_password(args)
    async with session(settings) as db:
        tenant = await tenants.get_tenant(db, args.tenant)
        user = await tenants.create_user(
            db,
            tenant=tenant,
            email=args.email,
            password=password,
            role=args.role,
            platform_admin=args.platform_admin,
        )
    print(
        f"user {user.email} created in {tenant.name} as {user.role}"
        + (" (platform admin)" if args.platform_admin else "")
    )
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        if args.tenant:
            tenant = await tenants.get_tenant(db, args.tenant)
            rows = [(u, tenant) for u in await tenants.list_users(db, tenant_id=tenant.id)]
        else:
            rows = await tenants.all_users(db)
    if args.json:
        print_json([documents.user_out(u) for u, _ in rows])
        return 0
    lines = [("EMAIL", "TENANT", "ROLE", "PLATFORM ADMIN", "CREATED")]
    for u, t in rows:
        admin = "yes" if u.is_platform_admin else "-"
        lines.append(
            (
                u.email,
                t.name,
                u.role + (" (must change password)" if u.must_change_password else ""),
                admin,
                when(u.created_at),
            )
        )
    table(lines)
    return 0


async def delete(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        user = await accounts.find_user(db, args.email, tenant_name=args.tenant)
        await accounts.delete_user(db, user, actor="cli")
    print(f"user {user.email} deleted (keys they made stay with the tenant)")
    return 0


async def reset_password(args: argparse.Namespace, settings: Settings) -> int:
    """With ``--password-stdin`` set that password; else print a one-time one, last, to change at sign-in."""
    chosen = stdin_line("--password-stdin") if args.password_stdin else None
    async with session(settings) as db:
        user = await accounts.find_user(db, args.email, tenant_name=args.tenant)
        if chosen is not None:
            await accounts.set_password(db, user, chosen, actor="cli")
        else:
            one_time = await accounts.reset_password(db, user, actor="cli")
    if chosen is not None:
        print(f"password of {user.email} set; their sessions were signed out")
        return 0
    print(f"password of {user.email} reset; their sessions were signed out. One-time password (change at sign-in):")
    print(one_time)
    return 0
