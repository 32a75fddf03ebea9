"""``relay usage``: a tenant's usage from the daily rollup, as a table or one JSON document."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli.common import session
from gateway.manage import keys, tenants
from gateway.settings import Settings


async def report(args: argparse.Namespace, settings: Settings) -> int:
    """A tenant's usage from the daily rollup: totals, and rows by day, model or key."""
    from gateway.conversation_upkeep import held_conversations
    from gateway.manage import cache_savings, usage

    since, until = usage.parse_time(args.since, "--since"), usage.parse_time(args.until, "--until")
    async with session(settings) as db:
        tenant = await tenants.get_tenant(db, args.tenant)
        key_id = (await keys.find_key(db, args.key, tenant_id=tenant.id)).id if args.key else None
        query = usage.UsageQuery.of(tenant.id, since, until, key_id=key_id, model=args.model)
        report = await usage.summary(db, query, args.by)
        saved = await cache_savings.savings(db, query)
        held, held_bytes = await held_conversations(db, tenant.id)
    if args.json:
        rows = []
        for r in report.rows:
            group: dict[str, Any] = {
                "day": {"day": r.day.isoformat() if r.day else None},
                "model": {"model": r.model},
                "key": {"key_id": r.key_id, "key_prefix": r.key_prefix, "key_name": r.key_name},
            }[args.by]
            rows.append({**group, **r.totals.to_dict(), **_cache(r.totals, saved.of_row(r))})
        doc = {
            "tenant": tenant.name,
            "tenant_id": tenant.id,
            "since": query.since.isoformat(),
            "until": query.until.isoformat(),
            "group_by": args.by,
            "totals": {**report.totals.to_dict(), **_cache(report.totals, saved.total_micro_usd)},
            "rows": rows,
            "cache_unpriced_models": sorted(saved.unpriced),
            "held_conversations": {"turns": held, "bytes": held_bytes},
        }
        print(json.dumps(doc, indent=2))
        return 0
    head = ("DAY", "MODEL", "KEY")[("day", "model", "key").index(args.by)]
    cols = ("REQUESTS", "ERRORS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST USD", "HIT RATE", "SAVED USD")
    lines: list[tuple[str, ...]] = [(head, *cols)]
    for r in report.rows:
        label = str(r.day) if args.by == "day" else r.model if args.by == "model" else r.key_prefix or r.key_id
        lines.append((label or "(no key)", *_usage_cells(r.totals, saved.of_row(r))))
    lines.append(("TOTAL", *_usage_cells(report.totals, saved.total_micro_usd)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols) + 1)]
    span = f"{query.since:%Y-%m-%d %H:%M} to {query.until:%Y-%m-%d %H:%M} UTC"
    print(f"usage of tenant {tenant.name}, {span} (whole UTC days)")
    for line in lines:
        print("  ".join([line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))]))
    if saved.unpriced:
        print(f"caching of models no longer priced counts as saving nothing: {', '.join(sorted(saved.unpriced))}")
    # Conversations Relay holds for this tenant now (Responses previous_response_id, Anthropic threads).
    print(
        f"held conversations: {held:,} turns, {held_bytes:,} bytes, kept {settings.conversation_ttl_s / 86400:g} days"
    )
    return 0


def _usage_cells(t: Any, saved_micro_usd: int) -> tuple[str, ...]:
    from gateway.manage.cache_savings import hit_rate

    counts = (t.requests, t.errors, t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens)
    rate = hit_rate(t)
    rate_cell = "-" if rate is None else f"{rate:.1%}"
    return (*(f"{n:,}" for n in counts), f"{t.cost_usd:,.6f}", rate_cell, f"{saved_micro_usd / 1e6:,.6f}")


def _cache(t: Any, saved_micro_usd: int) -> dict[str, Any]:
    """The caching figures of the JSON document, named as in the management API's usage documents."""
    from gateway.manage.cache_savings import hit_rate

    return {
        "cache_hit_rate": hit_rate(t),
        "cache_saved_micro_usd": saved_micro_usd,
        "cache_saved_usd": saved_micro_usd / 1_000_000,
    }
