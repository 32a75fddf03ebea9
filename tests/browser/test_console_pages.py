"""The operator's console pages in a real browser: upstreams, an upstream, the keys list, the request log and one
request, the dashboard's spend over time; at 1440x900 and 390x844, light and dark (``prefers-color-scheme``).

No page scrolls sideways; the wide tables fit without their own scrollbar at 1440 px. One screenshot per page,
size and scheme goes to ``tests/artifacts/`` (``console-<backend>-<scheme>-<size>-<page>.png``).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port
from test_admin_flow import PASSWORD, off_loop

from gateway.manage import tenants, upstream_keys
from gateway.testing.fake_upstream import Reply

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # gitignored, like the other browser tests' shots
SIZES = {"wide": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


def _world(stack: Any, fake_url: str) -> tuple[str, str, str]:
    """(email of a platform admin owning the tenant, upstream id, request id of a request made through it)."""
    seed = stack.seed
    tenant = seed.tenant(f"Console {secrets.token_hex(2)}")
    email = f"ops-{secrets.token_hex(3)}@console.example"
    seed.run(
        lambda s: tenants.create_user(
            s, tenant=tenant, email=email, password=PASSWORD, role="owner", platform_admin=True
        )
    )
    up = seed.upstream(
        tenant,
        name="deepseek-with-a-rather-long-upstream-name",
        base_url=fake_url + "/v1/a/rather/long/path/to/show/how/the/url/wraps",
        api_key="sk-upstream-secret-abcd1234WXYZ",
        extra_headers={"X-Org-Id": "org-1234567890"},
    )
    model = seed.model(tenant, up, "deepseek-chat-with-a-long-name", input_price=0.27, output_price=1.1)
    # a pool of three, one of them disabled by the upstream's refusal: the Keys section at its widest
    for name, weight, priority in (("night-shift-backup", 2, 1), ("overflow-when-the-others-are-cooling", 1, 2)):
        seed.run(
            lambda s, n=name, w=weight, p=priority: upstream_keys.add_key(
                s, up, f"sk-{n}-{secrets.token_hex(8)}", seed.box, name=n, weight=w, priority=p, rpm=600, tpm=2_000_000
            )
        )

    async def refused(s: Any) -> None:
        key = await upstream_keys.get_key(s, up, "night-shift-backup")
        await upstream_keys.disable_failed_key(
            s, key.id, "upstream answered 401: invalid api key (authentication_error)"
        )

    seed.run(refused)
    key = seed.key(tenant, name="laptop of the night shift")
    for _ in range(3):
        seed.key(tenant, name=f"ci-{secrets.token_hex(2)}")

    def ask(secret: str, model_name: str, text: str) -> httpx.Response:
        body = {"model": model_name, "messages": [{"role": "user", "content": text}]}
        return httpx.post(stack.url + "/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
                          json=body, timeout=30)  # fmt: skip

    first = ask(key.secret, model.name, "hello")
    assert first.status_code == 200, first.text
    ask(key.secret, model.name, "again")
    # an error row in the log (its code under the status), from a key of one short word
    gone = seed.upstream(tenant, name="gone", base_url=f"http://127.0.0.1:{free_port()}/v1")
    seed.model(tenant, gone, "gone-model")
    r = ask(seed.key(tenant, name="laptop").secret, "gone-model", "anyone?")
    assert r.status_code == 502, r.text
    seed.usage_rows(tenant, expect=3)
    return email, up.id, first.headers["request-id"]


def _fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_console_pages_fit_both_sizes_in_light_and_dark(stack: Any, browser: Any, fake: Any) -> None:
    fake.enqueue(
        Reply(text="Hello", usage=(40_000, 12_000)),
        Reply(status=503, body=b'{"error": {"message": "overloaded"}}', content_type="application/json"),
    )
    email, upstream_id, request_id = off_loop(_world, stack, fake.url)
    pages = {
        "upstreams": "/upstreams",
        "upstream": f"/upstreams/{upstream_id}",
        "keys": "/keys",
        "usage": "/usage",
        "request": f"/usage/requests/{request_id}",
        "dashboard": "/dashboard?range=7d",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport=SIZES["wide"], color_scheme=scheme)
        page = context.new_page()
        page.set_default_timeout(30_000)
        admin = stack.url + "/admin"
        page.goto(admin + "/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/admin/dashboard"))
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        assert dark == (scheme == "dark")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(15, 20, 27)") == (scheme == "dark"), background
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            for label, path in pages.items():
                page.goto(admin + path)
                assert page.locator("h1").count() == 1, (scheme, size, label)
                assert _fits(page), (scheme, size, label)
                if size == "wide":
                    for wrap in page.locator(".table-wrap").all():
                        if wrap.is_visible():
                            clipped = wrap.evaluate("e => e.scrollWidth > e.clientWidth")
                            assert not clipped, (scheme, label, "a table scrolls at 1440 px")
                page.screenshot(
                    path=str(ARTIFACTS / f"console-{stack.name}-{scheme}-{size}-{label}.png"), full_page=True
                )
                if size == "phone":  # a page shorter than the screen stretched the nav bar (127 px instead of 53)
                    page.set_viewport_size({"width": 390, "height": 3000})
                    nav = page.evaluate("document.querySelector('.nav').getBoundingClientRect().height")
                    assert nav < 80, (scheme, label, nav)
                    page.set_viewport_size(viewport)
                if label == "upstream":  # the key pool on its own, legible at both sizes
                    keys_shot = ARTIFACTS / f"console-{stack.name}-{scheme}-{size}-upstream-keys.png"
                    page.locator("#keys").screenshot(path=str(keys_shot))
        page.goto(admin + pages["upstream"])
        assert "sk-upstream-secret" not in page.content() and "org-1234567890" not in page.content()
        pool = page.locator("#keys table.pool tbody tr")
        assert pool.count() == 3 and "invalid api key" in pool.nth(1).inner_text()
        assert page.get_by_role("button", name="Enable key night-shift-backup").is_visible()
        assert "sk-night-shift" not in page.content()
        context.close()
