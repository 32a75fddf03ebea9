"""The first hour, in a real browser: a fresh gateway's first admin (its one-time password made as ``relay
serve`` makes it) signs in, must choose a password, opens tenant ``acme`` (set up like the README walkthrough)
from Platform → Tenants, sees its key and usage, creates a key and reloads the result page.

Screenshots of the main pages at 1440x900 and 390x844 go to the test's tmp dir; no page scrolls sideways.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from support import (
    REDIS_URL,
    GatewayServer,
    Seeder,
    base_settings,
    create_postgres_database,
    drop_postgres_database,
    prepare_database,
)
from test_admin_flow import off_loop

from gateway.cli.serve import FIRST_ADMIN, _bootstrap
from gateway.db.tables import ApiKey
from gateway.testing.fake_upstream import Reply

pytestmark = pytest.mark.browser
NEW_PASSWORD = "my own first-run passphrase"
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = ("/dashboard", "/keys", "/models", "/upstreams", "/usage", "/members", "/account", "/platform/tenants")


@dataclass
class Fresh:
    """A gateway on an empty database of the backend's kind, after ``relay serve``'s first-run step."""

    url: str
    seed: Seeder
    password: str


@pytest.fixture(scope="module")
def fresh(backend: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    name, settings = backend
    pg_url = None
    if name == "sqlite":
        settings = base_settings(f"sqlite:///{tmp_path_factory.mktemp('first-run') / 'relay.db'}", None)
    else:
        pg_url = create_postgres_database()
        settings = replace(base_settings(pg_url, REDIS_URL), spool_dir=str(tmp_path_factory.mktemp("spool")))
    prepare_database(settings)
    password = asyncio.run(_bootstrap(settings))
    assert password, "the database was not empty"
    server = GatewayServer(settings).start()
    yield Fresh(url=server.url, seed=Seeder(server.settings), password=password)
    server.stop()
    if pg_url:
        drop_postgres_database(pg_url)


def _acme(fresh: Fresh, fake_url: str) -> Any:
    """``relay tenants create acme``, ``upstreams add``, ``models add``, ``keys create``, then a request."""
    seed = fresh.seed
    tenant = seed.tenant("acme")
    up = seed.upstream(tenant, name="deepseek", base_url=fake_url + "/v1", dialect="openai")
    seed.model(tenant, up, "deepseek-chat", upstream_model="deepseek-chat", input_price=0.27, output_price=1.1)
    key = seed.key(tenant, name="laptop")
    r = httpx.post(
        fresh.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key.secret}"},
        json={"model": "deepseek-chat", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    seed.usage_rows(tenant, expect=1)
    return tenant


def _keys_of(fresh: Fresh, tenant_id: str) -> int:
    async def count(s: Any) -> int:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant_id)))

    return fresh.seed.run(count)


def _fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_first_run_story(fresh: Fresh, browser: Any, fake: Any, tmp_path: Path) -> None:
    fake.enqueue(Reply(text="Hello from DeepSeek", usage=(40, 12)))
    acme = off_loop(_acme, fresh, fake.url)
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    page.set_default_timeout(30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    admin = fresh.url + "/admin"

    def shot(label: str) -> None:
        page.screenshot(path=str(tmp_path / f"{label}.png"), full_page=True)

    # Sign in with the one-time password: the change-password page comes first, whatever was asked for.
    page.goto(admin + "/keys")
    page.get_by_label("Email").fill(FIRST_ADMIN)
    page.get_by_label("Password").fill(fresh.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/account/password$"))
    shot("01-change-password")
    page.goto(admin + "/platform/tenants")
    assert page.url.endswith("/admin/account/password")
    page.get_by_label("One-time password").fill(fresh.password)
    page.locator("#f-password").fill(NEW_PASSWORD)  # "New password", beside "New password again"
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url(re.compile(r"/admin/dashboard"))
    assert "Password changed." in page.inner_text("main")

    # Platform → Tenants: acme's usage this month, then its pages as platform admin.
    page.get_by_role("link", name="Tenants").click()
    row = page.locator("table.tenants tr", has_text="acme")
    counts = [c.strip() for c in row.locator("td.num").all_inner_texts()][:3]
    assert counts == ["0", "1", "1"]  # members, live keys, requests this month
    shot("02-platform-tenants")
    row.get_by_role("button", name="acme").click()
    page.wait_for_url(re.compile(r"/admin/dashboard"))
    banner = page.locator(".viewing")
    assert "Viewing tenant acme as platform admin" in banner.inner_text()
    page.get_by_role("link", name="API keys").click()
    assert page.get_by_role("link", name="laptop").is_visible()
    assert "Viewing tenant acme" in banner.inner_text()
    page.get_by_role("link", name="Usage").click()
    log = page.locator("table.log tbody tr")
    assert log.count() == 1 and "deepseek-chat" in log.first.inner_text() and "laptop" in log.first.inner_text()

    # A key made while viewing: shown once; a reload neither makes another nor shows it again.
    page.goto(admin + "/keys/new")
    page.get_by_label("Name").fill("from the browser")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_url(re.compile(r"/admin/keys/[0-9a-f]{32}\?flash="))
    secret = page.locator("#secret").input_value()
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", secret)
    shot("03-key-created")
    page.reload()
    assert page.locator("#secret").count() == 0 and secret not in page.content()
    page.go_back()
    page.go_forward()
    assert secret not in page.content()
    assert off_loop(_keys_of, fresh, acme.id) == 2

    # A member invited while viewing gets a one-time password, shown once.
    page.goto(admin + "/members")
    page.get_by_label("Email").fill("ops@acme.example")
    page.get_by_role("button", name="Add member").click()
    page.wait_for_url(re.compile(r"/admin/members\?flash="))
    once = page.locator("#new-password").input_value()
    assert len(once) >= 16
    page.reload()
    assert page.locator("#new-password").count() == 0 and once not in page.content()
    assert page.get_by_role("cell", name="ops@acme.example one-time password").is_visible()

    # Every main page, at both sizes: nothing scrolls sideways; the request log fits without its own scrollbar.
    for size, label in ((WIDE, "wide"), (PHONE, "phone")):
        page.set_viewport_size(size)
        for path in PAGES:
            page.goto(admin + path)
            assert _fits(page), (label, path)
            shot(f"10-{label}{path.replace('/', '-')}")
        page.goto(admin + "/usage")
        if size is WIDE:
            wrap = page.locator(".table-wrap").first
            assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth"), "the request log is clipped at 1440 px"

    # On a phone the navigation folds behind a Menu button.
    menu = page.get_by_role("button", name="Menu")
    assert menu.is_visible() and not page.get_by_role("link", name="API keys").is_visible()
    menu.click()
    assert page.get_by_role("link", name="API keys").is_visible() and _fits(page)
    shot("20-phone-menu-open")
    page.get_by_role("button", name="Back to default").click()
    page.wait_for_url(re.compile(r"/admin/platform/tenants"))
    assert page.locator(".viewing").count() == 0
    assert dialogs == []
    context.close()
