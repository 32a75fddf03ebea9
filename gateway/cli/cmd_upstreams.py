"""``relay upstreams …``: add, list, show, update, delete. An upstream's key is never printed: whether one is
stored, and its last four characters, as the management API shows it."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import box, headers, json_object, owner, owner_label, print_json, read_upstream_key, session
from gateway.errors import InvalidRequest
from gateway.manage import documents, upstreams
from gateway.settings import Settings
from gateway.ssrf import Allowlist


async def add(args: argparse.Namespace, settings: Settings) -> int:
    api_key = read_upstream_key(args)
    async with session(settings) as db:
        row = await upstreams.add_upstream(
            db,
            box=box(settings),
            tenant=await owner(db, args),
            name=args.name,
            dialect=args.dialect,
            base_url=args.base_url,
            api_key=api_key,
            extra_headers=headers(args.header),
            timeout_s=args.timeout,
            profile=json_object(args.profile, "--profile"),
            allowlist=Allowlist.parse(settings.upstream_allowlist),
        )
    who = "platform" if args.platform else f"tenant {args.tenant}"
    print(
        f"upstream {row.name} added for {who}: {row.dialect} at {row.base_url}"
        + (" (key stored encrypted)" if api_key else "")
    )
    return 0


async def list_(args: argparse.Namespace, settings: Settings) -> int:
    """The upstreams of ``--tenant`` or ``--platform``; neither: every upstream, with its owner."""
    sealed = box(settings)
    async with session(settings) as db:
        if args.tenant or args.platform:
            tenant = await owner(db, args)
            rows = [(u, tenant) for u in await upstreams.list_upstreams(db, tenant_id=tenant.id if tenant else None)]
        else:
            rows = await upstreams.all_upstreams(db)
        docs = await documents.upstreams_out(db, [u for u, _ in rows], sealed)
    if args.json:
        print_json(docs)
        return 0
    for doc, (_, tenant) in zip(docs, rows, strict=True):
        key = f"key {doc.api_key_hint}" if doc.has_api_key else "no key"
        who = "platform" if tenant is None else tenant.name
        print(f"{doc.name}\t{who}\t{doc.dialect}\t{doc.base_url}\t{key}")
    return 0


async def show(args: argparse.Namespace, settings: Settings) -> int:
    async with session(settings) as db:
        row = await upstreams.get_upstream(db, args.name, tenant=await owner(db, args))
        doc = await documents.upstream_doc(db, row, box(settings))
    print_json(doc)
    return 0


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    """The fields the flags change; ``--remove-api-key`` stores none, ``--timeout 0`` is the default timeout."""
    changes: dict[str, Any] = {}
    if args.rename is not None:
        changes["name"] = args.rename
    if args.dialect is not None:
        changes["dialect"] = args.dialect
    if args.base_url is not None:
        changes["base_url"] = args.base_url
    if args.remove_api_key:
        changes["api_key"] = None
    elif (key := read_upstream_key(args)) is not None:
        changes["api_key"] = key
    if args.header:
        changes["extra_headers"] = headers(args.header)
    if args.timeout is not None:
        changes["timeout_s"] = args.timeout or None
    if args.profile is not None:
        changes["profile"] = json_object(args.profile, "--profile")
    return changes


async def update(args: argparse.Namespace, settings: Settings) -> int:
    changes = _changes(args)
    if not changes:
        raise InvalidRequest("nothing to change: give at least one option (see relay upstreams update --help)")
    sealed = box(settings)
    async with session(settings) as db:
        tenant = await owner(db, args)
        row = await upstreams.get_upstream(db, args.name, tenant=tenant)
        await upstreams.update_upstream(
            db, row, changes, box=sealed, allowlist=Allowlist.parse(settings.upstream_allowlist)
        )
        doc = await documents.upstream_doc(db, row, sealed)
    print(f"upstream {doc.name} of {owner_label(tenant)} updated: " + ", ".join(sorted(changes)))
    return 0


async def delete(args: argparse.Namespace, settings: Settings) -> int:
    """Refused while models use the upstream (they are named); ``--force`` deletes those models with it."""
    async with session(settings) as db:
        tenant = await owner(db, args)
        row = await upstreams.get_upstream(db, args.name, tenant=tenant)
        models = sorted(m.name for m, u in await upstreams.list_models(db, tenant=tenant) if u.id == row.id)
        await upstreams.delete_upstream(db, row, force=args.force)
    print(
        f"upstream {row.name} of {owner_label(tenant)} deleted"
        + (f" with models {', '.join(models)}" if models else "")
    )
    return 0
