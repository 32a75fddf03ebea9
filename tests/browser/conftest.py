"""Browser fixtures: Debian's chromium driven by Playwright's sync API (never a downloaded browser).

Skipped when ``/usr/bin/chromium`` is missing, unless ``RELAY_TEST_REQUIRE_SERVICES`` is set (then it fails).
Screenshots go to ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import REQUIRE_SERVICES

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def browser(stack: Any) -> Iterator[Any]:
    """Per module (and backend), so no Playwright loop is left running while other tests seed databases.

    While it runs, Playwright's sync API keeps an event loop running on the main thread: tests call anything
    that uses ``asyncio.run`` (the seeder) in a worker thread.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not installed (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " and RELAY_TEST_REQUIRE_SERVICES is set", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


@dataclass
class Tab:
    """One browser page on the gateway, recording every JavaScript dialog it opened."""

    page: Any
    base: str
    name: str
    dialogs: list[tuple[str, str]] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    @property
    def alerts(self) -> list[tuple[str, str]]:
        return [d for d in self.dialogs if d[0] != "confirm"]


@pytest.fixture
def tab(browser: Any, stack: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin="/".join(stack.url.split("/")[:3]))
    page = context.new_page()
    page.set_default_timeout(30_000)
    tab = Tab(page=page, base=stack.url + "/admin", name=stack.name)

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    page.on("dialog", on_dialog)
    yield tab
    context.close()
