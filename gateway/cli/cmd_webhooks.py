"""``relay webhooks …``: add (the signing secret printed last, once), list, remove, test."""

from __future__ import annotations

import argparse

from gateway.cli.common import box, owner, owner_label, print_json, session, table, when
from gateway.db.session import create_engine, create_sessionmaker
from gateway.manage import webhooks
from gateway.settings import Settings
from gateway.ssrf import Allowlist, guarded_session
from gateway.upstreams.client import create_session
from gateway.webhooks.delivery import Clients, send_test


async def add(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        new = await webhooks.add_webhook(
            db,
            box=box(settings),
            tenant=tenant,
            url=args.url,
            events=webhooks.parse_events(args.events),
            allowlist=Allowlist.parse(settings.upstream_allowlist),
        )
    events = ", ".join(new.row.events) or "all events"
    print(f"webhook {new.row.id} added for {owner_label(tenant)}: {new.row.url} ({events})")
    print("signing secret (shown once; verify the relay-signature header with it):")
    print(new.secret)
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    """The webhooks of ``--tenant`` or ``--platform``; neither: every webhook, with its owner."""
    async with session(settings) as db:
        if args.tenant or args.platform:
            tenant = await owner(db, args)
            rows = [(w, tenant) for w in await webhooks.list_webhooks(db, tenant_id=tenant.id if tenant else None)]
        else:
            rows = await webhooks.all_webhooks(db)
    if args.json:
        print_json([webhooks.webhook_out(w) for w, _ in rows])
        return 0
    lines = [["ID", "OWNER", "URL", "EVENTS", "CREATED"]]
    for hook, tenant in rows:
        who = "platform" if tenant is None else tenant.name
        lines.append([hook.id, who, hook.url, ",".join(hook.events) or "all", when(hook.created_at)])
    table(lines)
    return 0


async def remove(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        row = await webhooks.find_webhook(db, args.webhook_id)
        await webhooks.remove_webhook(db, row)
    print(f"webhook {row.id} removed")
    return 0


async def test(args: argparse.Namespace, settings: Settings) -> int:
    """Send a signed ``webhook.test`` now and print the receiver's answer; status 1 when it was not 2xx."""
    async with session(settings) as db:  # migrates an embedded database first, like every command
        webhook_id = (await webhooks.find_webhook(db, args.webhook_id)).id
    engine = create_engine(settings.database_url, pool_size=1)
    # The same kinds of client as the gateway's: platform URLs plain, tenant URLs through the SSRF guard.
    http, guarded = create_session(limit=4), guarded_session(Allowlist.parse(settings.upstream_allowlist), 4)
    try:
        clients = Clients(http, guarded)
        outcome = await send_test(create_sessionmaker(engine), box(settings), clients, webhook_id)
    finally:
        await http.close()
        await guarded.close()
        await engine.dispose()
    if outcome.ok:
        print(f"webhook {webhook_id}: delivered; the receiver answered {outcome.status}")
        return 0
    print(f"webhook {webhook_id}: not delivered: {outcome.error}")
    return 1
