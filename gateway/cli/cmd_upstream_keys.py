"""``relay upstreams keys …``: one upstream's key pool (add, list, update, remove, enable, disable).

A key is never printed: its id, name and last four characters at most, as the management API shows them.
Like every other command, a change reaches a running gateway within its route cache (``RELAY_ROUTE_CACHE_TTL``,
seconds): this process has no line to the gateway's workers, so it only writes the database.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import box, owner, owner_label, print_json, read_upstream_key, session
from gateway.errors import InvalidRequest
from gateway.manage import documents, upstream_keys, upstreams
from gateway.settings import Settings


async def add(args: argparse.Namespace, settings: Settings) -> int:
    secret = read_upstream_key(args) or ""  # the parser requires one of the two sources; empty is refused below
    async with session(settings) as db:
        tenant = await owner(db, args)
        up = await upstreams.get_upstream(db, args.upstream, tenant=tenant)
        key = await upstream_keys.add_key(
            db,
            up,
            secret,
            box(settings),
            name=args.name or "",
            weight=1 if args.weight is None else args.weight,
            priority=1 if args.priority is None else args.priority,
            rpm=args.rpm,
            tpm=args.tpm,
        )
        key_id, name = key.id, key.name
    print(f"key {key_id} ({name}) added to upstream {up.name} of {owner_label(tenant)}")
    return 0


def _limits(doc: documents.UpstreamKey) -> str:
    return f"{doc.rpm or '-'}/{doc.tpm or '-'}"


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    """One line per key in pool order: id, name, hint, weight, priority, rpm/tpm, state (and why disabled)."""
    sealed = box(settings)
    async with session(settings) as db:
        up = await upstreams.get_upstream(db, args.upstream, tenant=await owner(db, args))
        doc = await documents.upstream_doc(db, up, sealed)
    if args.json:
        print_json(doc.keys)
        return 0
    for k in doc.keys:
        state = k.state if k.state == "active" else f"{k.state}: {k.disabled_reason or 'no reason given'}"
        print(f"{k.id}\t{k.name}\t{k.hint}\tweight {k.weight}\tpriority {k.priority}\trpm/tpm {_limits(k)}\t{state}")
    return 0


async def update(args: argparse.Namespace, settings: Settings) -> int:
    fields = {"weight": args.weight, "priority": args.priority, "rpm": args.rpm, "tpm": args.tpm, "name": args.name}
    changed = sorted(f for f, v in fields.items() if v is not None)
    if not changed:
        raise InvalidRequest("nothing to change: give --weight, --priority, --rpm, --tpm or --name")
    async with session(settings) as db:
        tenant = await owner(db, args)
        up = await upstreams.get_upstream(db, args.upstream, tenant=tenant)
        key = await upstream_keys.get_key(db, up, args.key_id)
        await upstream_keys.update_key(db, up, key, **fields)
        key_id = key.id
    print(f"key {key_id} of upstream {up.name} ({owner_label(tenant)}) updated: {', '.join(changed)}")
    return 0


async def remove(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        up = await upstreams.get_upstream(db, args.upstream, tenant=tenant)
        key = await upstream_keys.get_key(db, up, args.key_id)
        key_id, name = key.id, key.name
        await upstream_keys.remove_key(db, up, key)
    print(f"key {key_id} ({name}) removed from upstream {up.name} of {owner_label(tenant)}")
    return 0


async def _set_state(args: argparse.Namespace, settings: Settings, *, enabled: bool) -> int:
    async with session(settings) as db:
        tenant = await owner(db, args)
        up = await upstreams.get_upstream(db, args.upstream, tenant=tenant)
        key = await upstream_keys.get_key(db, up, args.key_id)
        if enabled:
            await upstream_keys.set_key_state(db, up, key, enabled=True)
        else:
            reason = " ".join(args.reason.split()) or "disabled by an operator"
            await upstream_keys.set_key_state(db, up, key, enabled=False, reason=reason)
        key_id, name = key.id, key.name
    verb = "enabled: back in the pool" if enabled else "disabled: out of the pool until enabled"
    print(f"key {key_id} ({name}) of upstream {up.name} ({owner_label(tenant)}) {verb}")
    return 0


async def enable(args: argparse.Namespace, settings: Settings) -> int:
    return await _set_state(args, settings, enabled=True)


async def disable(args: argparse.Namespace, settings: Settings) -> int:
    return await _set_state(args, settings, enabled=False)
