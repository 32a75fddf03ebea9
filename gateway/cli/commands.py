"""Each ``relay`` sub-command: parse its options, call the management services, print the result."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.state import provider_states
from gateway.db.session import create_engine, create_sessionmaker, migrate
from gateway.db.tables import Tenant
from gateway.errors import InvalidRequest
from gateway.manage import keys, limits, providers, tenants, tokens, upstreams
from gateway.probe import probe
from gateway.routing import upstream_from_row
from gateway.security import SecretBox, derive_key
from gateway.settings import Settings
from gateway.ssrf import Allowlist, guarded_session
from gateway.upstreams.client import create_session


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the command succeeds, rolled back otherwise."""
    if settings.embedded:
        await asyncio.to_thread(migrate, settings.database_url)  # embedded: no separate `relay migrate`
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine).begin() as session:
            yield session
    finally:
        await engine.dispose()


async def _tenant_or_platform(session: AsyncSession, args: argparse.Namespace) -> Tenant | None:
    return None if args.platform else await tenants.get_tenant(session, args.tenant)


def _json_object(text: str | None, flag: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{flag}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{flag}: must be a JSON object")
    return value


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli.serve import serve as run_server

    return run_server(settings, host=args.host, port=args.port, workers=args.workers)


def migrate_db(args: argparse.Namespace, settings: Settings) -> int:
    migrate(settings.database_url)
    print("database is at the newest revision")
    return 0


async def tenants_create(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        tenant = await tenants.create_tenant(session, args.name)
    print(f"tenant {tenant.name} created (id {tenant.id})")
    return 0


async def tenants_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        rows = await session.scalars(sa.select(Tenant).order_by(Tenant.name))
        for t in rows:
            print(f"{t.id}  {t.name}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise InvalidRequest("passwords do not match")
    return first


async def users_create(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    async with _session(settings) as session:
        tenant = await tenants.get_tenant(session, args.tenant)
        user = await tenants.create_user(
            session,
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


def _read_upstream_key(args: argparse.Namespace) -> str | None:
    if args.api_key_stdin:
        return sys.stdin.readline().strip() or None
    if args.api_key_env:
        value = os.environ.get(args.api_key_env)
        if not value:
            raise InvalidRequest(f"--api-key-env: environment variable {args.api_key_env} is not set")
        return value
    return None


def _headers(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InvalidRequest(f"--header {item!r}: expected NAME:VALUE")
        out[name.strip()] = value.strip()
    return out


async def upstreams_add(args: argparse.Namespace, settings: Settings) -> int:
    api_key = _read_upstream_key(args)
    box = SecretBox(derive_key(settings.secret_key, "upstream-secrets"))
    async with _session(settings) as session:
        row = await upstreams.add_upstream(
            session,
            box=box,
            tenant=await _tenant_or_platform(session, args),
            name=args.name,
            dialect=args.dialect,
            base_url=args.base_url,
            api_key=api_key,
            extra_headers=_headers(args.header),
            timeout_s=args.timeout,
            profile=_json_object(args.profile, "--profile"),
            allowlist=Allowlist.parse(settings.upstream_allowlist),
        )
    owner = "platform" if args.platform else f"tenant {args.tenant}"
    print(
        f"upstream {row.name} added for {owner}: {row.dialect} at {row.base_url}"
        + (" (key stored encrypted)" if api_key else "")
    )
    return 0


async def models_add(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        tenant = await _tenant_or_platform(session, args)
        upstream = await upstreams.get_upstream(session, args.upstream, tenant=tenant)
        row = await upstreams.add_model(
            session,
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
            profile=_json_object(args.profile, "--profile"),
            fallbacks=args.fallback,
        )
    print(f"model {row.name} -> {upstream.name}:{row.upstream_model}")
    return 0


async def models_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        rows = await upstreams.list_models(session, tenant=await _tenant_or_platform(session, args))
    for model, up in rows:
        prices = f"in ${model.input_price}/MTok out ${model.output_price}/MTok"
        print(f"{model.name}\t{up.name}:{model.upstream_model}\t{up.dialect}\t{prices}")
    return 0


async def models_show(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        model, up = await upstreams.get_model(session, args.name, tenant=await _tenant_or_platform(session, args))
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


async def models_test(args: argparse.Namespace, settings: Settings) -> int:
    """Probe a model's upstream for real; store what it learned in the model's capability profile."""
    async with _session(settings) as session:
        model, up = await upstreams.get_model(session, args.name, tenant=await _tenant_or_platform(session, args))
        upstream = upstream_from_row(up, _box(settings))
        http = (
            create_session() if up.tenant_id is None else guarded_session(Allowlist.parse(settings.upstream_allowlist))
        )
        async with http:
            result = await probe(http, upstream, model.upstream_model)
        if not args.no_save:
            await upstreams.record_probe(session, model, result.to_dict())
    for check in result.checks:
        mark = "ok  " if check.ok else "FAIL" if check.detail != "skipped" else "skip"
        latency = f"{check.latency_ms} ms" if check.latency_ms is not None else ""
        print(f"{mark} {check.name:13} {latency:>8}  {check.detail}")
    learned = upstreams.effective_profile(up, model.profile, model.max_output_tokens).to_dict()
    print(json.dumps({"capabilities": result.capabilities, "learned": result.profile, "profile": learned}, indent=2))
    return 0 if result.ok else 1


def _parse_expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"--expires {value!r}: not an ISO 8601 date-time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _pairs(text: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InvalidRequest(f"{flag} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _aliases(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in values:
        pattern, sep, model = item.partition("=")
        if not sep or not pattern.strip() or not model.strip():
            raise InvalidRequest(f"--alias {item!r}: expected PATTERN=MODEL")
        out.append((pattern.strip(), model.strip()))
    return out


async def keys_create(args: argparse.Namespace, settings: Settings) -> int:
    allowed = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    async with _session(settings) as session:
        tenant = await tenants.get_tenant(session, args.tenant)
        new = await keys.create_key(
            session,
            tenant=tenant,
            secret_key=settings.secret_key,
            name=args.name,
            allow_custom_models=args.allow_custom_models,
            allowed_models=allowed,
            aliases=_aliases(args.alias),
            expires_at=_parse_expiry(args.expires),
            claude_code_profile=_pairs(args.claude_code_profile or "", "--claude-code-profile"),
        )
        await _apply_limits(session, new.row, args)
    print(f"key {new.row.id} ({new.row.prefix}…) created for tenant {tenant.name}; the secret is shown once:")
    print(new.secret)
    return 0


async def _apply_limits(session: AsyncSession, row: Any, args: argparse.Namespace) -> None:
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
    await limits.set_key_limits(session, row, **changes)


async def keys_update(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        row = await keys.find_key(session, args.key)
        await _apply_limits(session, row, args)
        budget = (
            "none"
            if row.budget_micro_usd is None
            else f"${row.budget_micro_usd / 1e6:g} ({row.budget_period or 'total'})"
        )
        summary = f"rpm {row.rpm_limit or '-'}, tpm {row.tpm_limit or '-'}, concurrency {row.concurrency_limit or '-'}"
    print(f"key {row.id} ({row.prefix}…): {summary}, budget {budget}")
    return 0


async def tenants_update(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        tenant = await tenants.get_tenant(session, args.name)
        await limits.set_tenant_budget(
            session, tenant, budget_usd=args.budget or None, budget_period=args.budget_period
        )
    print(f"tenant {tenant.name}: budget " + (f"${args.budget:g} ({args.budget_period})" if args.budget else "none"))
    return 0


async def keys_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        rows = await keys.list_keys(session, tenant=await tenants.get_tenant(session, args.tenant))
    now = datetime.now(UTC)
    for k in rows:
        state = "revoked" if k.revoked_at else "expired" if k.expires_at and k.expires_at <= now else "active"
        print(
            f"{k.id}  {k.prefix}…  {state:8} {k.name or '-'}  custom-models={'on' if k.allow_custom_models else 'off'}"
        )
    return 0


async def keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        row = await keys.revoke_key(session, args.key)
    print(f"key {row.id} ({row.prefix}…) revoked")
    return 0


def _box(settings: Settings) -> SecretBox:
    return SecretBox(derive_key(settings.secret_key, "upstream-secrets"))


async def providers_enable(args: argparse.Namespace, settings: Settings) -> int:
    api_key = _read_upstream_key(args)
    async with _session(settings) as session:
        row = await providers.enable_provider(
            session,
            box=_box(settings),
            name=args.name,
            api_key=api_key,
            env=settings.provider_env,
            base_url=args.base_url,
        )
    print(f"provider {row.name} enabled" + (" (key stored encrypted)" if api_key else ""))
    return 0


async def providers_disable(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        await providers.disable_provider(session, name=args.name)
    print(f"provider {args.name} disabled")
    return 0


async def providers_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        states = await provider_states(session, _box(settings), settings.provider_env)
    for st in states:
        p = st.provider
        print(
            f"{p.name:12} {'on ' if st.enabled else 'off'}  key: {st.key_source:11} {p.dialect.value:9} {st.base_url}"
        )
    return 0


async def catalog_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        states = await provider_states(session, _box(settings), settings.provider_env)
    for st in states:
        p = st.provider
        if args.provider and p.name != args.provider:
            continue
        hint = "on" if st.enabled else f"off: set {p.key_env} or run `relay providers enable {p.name}`"
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
    async with _session(settings) as session:
        provider, model = await providers.set_price(session, model=args.model, prices=prices)
    print(f"prices of {model.name} ({provider}) overridden: " + ", ".join(f"{k} ${v:g}" for k, v in prices.items()))
    return 0


async def tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        tenant = await _tenant_or_platform(session, args)
        new = await tokens.create_token(
            session, tenant=tenant, secret_key=settings.secret_key, name=args.name, role=args.role
        )
    owner = "the platform" if tenant is None else f"tenant {tenant.name}"
    print(f"management token {new.row.id} ({new.row.prefix}…, {new.row.role}) created for {owner}; shown once:")
    print(new.secret)
    return 0


async def tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        tenant = await _tenant_or_platform(session, args)
        rows = await tokens.list_tokens(session, tenant_id=tenant.id if tenant else None)
    for t in rows:
        state = "revoked" if t.revoked_at else "active"
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        print(f"{t.id}  {t.prefix}…  {state:8} {t.role:7} {t.name or '-'}  last used {used}")
    return 0


async def tokens_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with _session(settings) as session:
        row = await tokens.revoke_token(session, args.token)
    print(f"management token {row.id} ({row.prefix}…) revoked")
    return 0


async def usage_report(args: argparse.Namespace, settings: Settings) -> int:
    """A tenant's usage from the daily rollup: totals, and rows by day, model or key."""
    from gateway.conversation_upkeep import held_conversations
    from gateway.manage import usage

    async with _session(settings) as session:
        tenant = await tenants.get_tenant(session, args.tenant)
        key_id = (await keys.find_key(session, args.key, tenant_id=tenant.id)).id if args.key else None
        query = usage.UsageQuery.of(
            tenant.id,
            usage.parse_time(args.since, "--since"),
            usage.parse_time(args.until, "--until"),
            key_id=key_id,
            model=args.model,
        )
        report = await usage.summary(session, query, args.by)
        held, held_bytes = await held_conversations(session, tenant.id)
    if args.json:
        rows = []
        for r in report.rows:
            group: dict[str, Any] = {
                "day": {"day": r.day.isoformat() if r.day else None},
                "model": {"model": r.model},
                "key": {"key_id": r.key_id, "key_prefix": r.key_prefix, "key_name": r.key_name},
            }[args.by]
            rows.append({**group, **r.totals.to_dict()})
        doc = {
            "tenant": tenant.name,
            "tenant_id": tenant.id,
            "since": query.since.isoformat(),
            "until": query.until.isoformat(),
            "group_by": args.by,
            "totals": report.totals.to_dict(),
            "rows": rows,
            "held_conversations": {"turns": held, "bytes": held_bytes},
        }
        print(json.dumps(doc, indent=2))
        return 0
    head = ("DAY", "MODEL", "KEY")[("day", "model", "key").index(args.by)]
    cols = ("REQUESTS", "ERRORS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST USD")
    lines: list[tuple[str, ...]] = [(head, *cols)]
    for r in report.rows:
        label = str(r.day) if args.by == "day" else r.model if args.by == "model" else r.key_prefix or r.key_id
        lines.append((label or "(no key)", *_usage_cells(r.totals)))
    lines.append(("TOTAL", *_usage_cells(report.totals)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols) + 1)]
    span = f"{query.since:%Y-%m-%d %H:%M} to {query.until:%Y-%m-%d %H:%M} UTC"
    print(f"usage of tenant {tenant.name}, {span} (whole UTC days)")
    for line in lines:
        print("  ".join([line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))]))
    # Conversations Relay holds for this tenant now (Responses previous_response_id, Anthropic threads).
    print(
        f"held conversations: {held:,} turns, {held_bytes:,} bytes, kept {settings.conversation_ttl_s / 86400:g} days"
    )
    return 0


def _usage_cells(t: Any) -> tuple[str, ...]:
    counts = (t.requests, t.errors, t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens)
    return (*(f"{n:,}" for n in counts), f"{t.cost_usd:,.6f}")
