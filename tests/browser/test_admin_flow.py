"""The admin's day, in a real browser: sign in, add a custom model, test it, issue a key, use it, watch usage.

Also: XSS payloads typed into forms stay inert (no dialog ever opens), and a screenshot of every page.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anthropic
import openai
import pytest

from gateway.manage import tenants
from gateway.testing.fake_upstream import Reply, ToolCall

pytestmark = pytest.mark.browser
PASSWORD = "browser-test-password-1"
HEALTHY = [
    Reply(text="pong"),
    Reply(text="pong"),
    Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
    Reply(text="red"),
]
T = TypeVar("T")
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def off_loop(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run ``fn`` (e.g. the seeder, which calls ``asyncio.run``) off the thread Playwright's loop runs on."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kw).result()


def _owner(stack: Any) -> tuple[Any, str]:
    tenant = off_loop(stack.seed.tenant, f"Acme {secrets.token_hex(2)}")
    email = f"ada-{secrets.token_hex(3)}@acme.example"
    off_loop(
        stack.seed.run,
        lambda s: tenants.create_user(
            s, tenant=tenant, email=email, password=PASSWORD, role="owner", platform_admin=True
        ),
    )
    return tenant, email


def _sign_in(tab: Any, email: str, *, wrong_first: bool = False) -> None:
    tab.go("")
    page = tab.page
    assert "/admin/login" in page.url
    tab.shot("01-login")
    if wrong_first:
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text() == "Email or password is incorrect."
        tab.shot("01b-login-failed")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/dashboard"))


def _add_model(tab: Any, fake_url: str, name: str, upstream_name: str = "") -> None:
    page = tab.page
    tab.go("/models")
    page.get_by_role("link", name="Add custom model").first.click()
    page.get_by_label("Model name").fill(name)
    page.get_by_label("Upstream model id").fill("deepseek-ai/DeepSeek-V3")
    page.get_by_label("API dialect").select_option("openai")
    if upstream_name:
        page.get_by_label("Upstream name").fill(upstream_name)
    page.get_by_label("Base URL").fill(fake_url + "/v1")
    page.get_by_label("API key").fill("sk-siliconflow-test-key-9876")
    page.get_by_label("Input", exact=True).fill("0.27")
    page.get_by_label("Output", exact=True).fill("1.10")
    page.get_by_role("button", name="Add model").click()
    page.wait_for_url(re.compile(r"/admin/models/[0-9a-f]{32}"))


def test_admin_day_in_the_browser(tab: Any, stack: Any, fake: Any) -> None:
    tenant, email = _owner(stack)
    page = tab.page
    _sign_in(tab, email, wrong_first=True)
    tab.shot("02-dashboard-empty")

    # Models: the empty state, then a custom model (DeepSeek via "SiliconFlow", here the fake upstream).
    tab.go("/models")
    assert page.get_by_text("No custom models yet").is_visible()
    tab.shot("03-models-empty")
    tab.go("/models/new")
    tab.shot("04-model-new")
    page.get_by_label("Base URL").fill("ftp://nowhere")
    page.get_by_role("button", name="Add model").click()
    assert page.locator("#e-name").inner_text() == "Model name is required."
    tab.shot("04b-model-new-errors")
    _add_model(tab, fake.url, "deepseek-v3", "siliconflow")
    assert "Model saved." in page.inner_text("main")
    assert "sk-siliconflow-test-key-9876" not in page.content()
    assert page.get_by_label("API key").get_attribute("placeholder") == "••••9876"

    fake.enqueue(*HEALTHY)
    page.get_by_role("button", name="Test connection").click()
    page.wait_for_url(re.compile(r"notice=model-tested"))
    results = page.locator("table.probe")
    assert "Upstream works" in page.inner_text("#test")
    for check in ("completion", "streaming", "tools", "images"):
        row = results.locator("tr", has_text=check).first
        assert "ok" in row.inner_text() and " ms" in row.inner_text(), row.inner_text()
    tab.shot("05-model-tested")

    # A key with custom models on, Claude Code's opus and haiku mapped to the new model.
    tab.go("/keys")
    assert page.get_by_text("No API keys yet").is_visible()
    page.get_by_role("link", name="Create key").first.click()
    page.get_by_label("Name").fill("Ada's laptop")
    page.get_by_label("Custom models").check()
    page.get_by_label("Opus").select_option("deepseek-v3")
    page.get_by_label("Haiku").select_option("deepseek-v3")
    page.get_by_label("Requests / minute").fill("120")
    page.get_by_label("Budget (USD)").fill("25")
    tab.shot("06-key-new")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_selector("#secret")
    tab.shot("07-key-created")
    page.locator("[data-copy=secret]").click()
    secret = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", secret), secret
    assert secret == page.locator("#secret").input_value()
    settings = page.locator("#snippet-claude-code").inner_text()
    assert secret in settings and '"ANTHROPIC_MODEL": "deepseek-v3"' in settings
    assert f'"ANTHROPIC_BASE_URL": "{stack.url}"' in settings

    # The key works through both doors.
    fake.enqueue(Reply(text="Hello from DeepSeek", usage=(12, 5)), Reply(text="Bonjour", usage=(30, 7)))
    chat = openai.OpenAI(base_url=stack.url + "/v1", api_key=secret, max_retries=0).chat.completions.create(
        model="deepseek-v3", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "Hello from DeepSeek"
    message = anthropic.Anthropic(base_url=stack.url, api_key=secret, max_retries=0).messages.create(
        model="claude-opus-4-8", max_tokens=64, messages=[{"role": "user", "content": "salut"}]
    )
    assert message.content[0].text == "Bonjour"  # Claude Code's default model, mapped by the key's profile
    off_loop(stack.seed.usage_rows, tenant, expect=2)

    # Usage: the two requests, newest first, with the key's name.
    tab.go("/usage")
    log = page.locator("table.log tbody tr")
    deadline = time.monotonic() + 10
    while log.count() < 2 and time.monotonic() < deadline:
        page.reload()
    assert log.count() == 2
    assert "anthropic → openai" in log.nth(0).inner_text() and "Ada's laptop" in log.nth(0).inner_text()
    assert "deepseek-v3" in log.nth(1).inner_text() and "200" in log.nth(1).inner_text()
    tab.shot("08-usage")
    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_text("No requests match").is_visible()

    tab.go("/dashboard")
    assert page.locator(".stat .value").first.inner_text() == "2"
    assert page.locator("svg.chart rect.bar").count() > 0
    assert "Held conversations: 0 turns" in page.locator("#held-conversations").inner_text()
    tab.shot("09-dashboard")
    tab.go("/keys")
    tab.shot("10-keys")
    page.get_by_role("link", name="Ada's laptop").click()
    assert secret not in page.content()  # shown once: the detail page has a placeholder
    tab.shot("11-key-detail")

    # Owners invite members (a generated password, shown once).
    tab.go("/members")
    page.get_by_label("Email").fill(f"bob-{secrets.token_hex(3)}@acme.example")
    page.get_by_role("button", name="Add member").click()
    assert len(page.locator("#new-password").input_value()) >= 16
    tab.shot("12-members")
    tab.go("/platform/tenants")
    page.get_by_label("Tenant name").fill(f"Globex {secrets.token_hex(2)}")
    page.get_by_label("Owner email").fill(f"hank-{secrets.token_hex(3)}@globex.example")
    page.get_by_role("button", name="Create tenant").click()
    assert page.locator("#owner-password").is_visible()
    tab.shot("13-platform-tenants")

    # Platform admins switch built-in providers on; their models then show on every tenant's models page.
    tab.go("/platform/providers")
    row = page.locator("tr", has_text="SiliconFlow")
    row.get_by_label("API key for SiliconFlow").fill("sk-platform-siliconflow-key")
    row.get_by_role("button", name="Enable").click()
    try:
        assert "enabled" in page.locator("tr", has_text="SiliconFlow").inner_text()
        tab.shot("14-platform-providers")
        tab.go("/models")
        assert page.locator("table").nth(1).locator("tbody tr").count() >= 2
        tab.shot("15-models")
    finally:  # the catalog is shared by every tenant of this test session: switch it off again
        tab.go("/platform/providers")
        page.locator("tr", has_text="SiliconFlow").get_by_role("button", name="Disable").click()
        assert "off" in page.locator("tr", has_text="SiliconFlow").inner_text()
    page.set_viewport_size({"width": 420, "height": 860})
    tab.go("/dashboard")
    tab.shot("16-dashboard-narrow")
    assert tab.alerts == []

    page.set_viewport_size({"width": 1280, "height": 860})
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/admin/login"))
    tab.go("/keys")
    assert "/admin/login" in page.url


def test_xss_payloads_typed_into_forms_never_run(tab: Any, stack: Any, fake: Any) -> None:
    _, email = _owner(stack)
    page = tab.page
    _sign_in(tab, email)
    _add_model(tab, fake.url, XSS[0], upstream_name=XSS[1])
    assert page.locator("h1").inner_text() == XSS[0]
    for payload in XSS:
        tab.go("/keys/new")
        page.get_by_label("Name").fill(payload)
        page.get_by_role("button", name="Create key").click()
        page.wait_for_selector("#secret")
        assert page.locator("h1").inner_text() == payload
    tab.go("/platform/tenants")
    page.get_by_label("Tenant name").fill(XSS[1])
    page.get_by_role("button", name="Create tenant").click()
    for path in ("/dashboard", "/usage", "/platform/tenants", "/models", "/keys"):
        tab.go(path)
        assert page.locator("img[src=x]").count() == 0 and page.locator("script:not([src])").count() == 0
        assert page.locator("main").inner_text().count(XSS[1]) >= (1 if path == "/keys" else 0)
    tab.shot("17-xss-keys")
    assert tab.dialogs == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
