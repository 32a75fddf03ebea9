"""Admin UI sign-in: sessions (cookie flags, rotation, logout, timeouts), throttling, security headers.

``AdminClient`` (plain httpx, like a browser that sends ``Origin``) is shared with ``test_admin_access``.
"""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from admin_ui import sessions as admin_sessions
from admin_ui import throttle as admin_throttle
from gateway.db.tables import AdminSession, AuditLog, LoginAttempt, User
from gateway.errors import Conflict
from gateway.manage import tenants

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


class AdminClient:
    """A browser-like client of ``/admin``: keeps cookies, sends ``Origin``, reads CSRF tokens from pages."""

    def __init__(self, stack: Any, *, origin: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.base = stack.url + "/admin"
        origin = origin or stack.url.split("/", 3)[0] + "//" + stack.url.split("/", 3)[2]
        self.http = httpx.Client(headers={"origin": origin, **(headers or {})}, timeout=60)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.base + path, **kw)

    def csrf(self, path: str) -> str:
        r = self.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:500])
        found = CSRF.search(r.text)
        assert found, f"no csrf field on {path}"
        return found.group(1)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf_from: str | None = None, **kw: Any
    ) -> httpx.Response:
        data = dict(data or {})
        if csrf_from is not None:
            data["csrf"] = self.csrf(csrf_from)
        return self.http.post(self.base + path, data=data, **kw)

    def follow(self, r: httpx.Response) -> httpx.Response:
        """GET the page a 303 points to (what a browser does after a form)."""
        assert r.status_code == 303, (r.status_code, r.text[:500])
        return self.http.get(r.url.join(r.headers["location"]))

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.post("/login", {"email": email, "password": password}, csrf_from="/login")

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get(admin_sessions.COOKIE) or self.http.cookies.get(admin_sessions.SECURE_COOKIE)

    def close(self) -> None:
        self.http.close()


def make_user(stack: Any, tenant: Any, *, role: str = "owner", platform_admin: bool = False) -> str:
    email = f"u-{secrets.token_hex(4)}@example.com"
    stack.seed.run(
        lambda s: tenants.create_user(
            s, tenant=tenant, email=email, password=PASSWORD, role=role, platform_admin=platform_admin
        )
    )
    return email


def signed_in(stack: Any, tenant: Any, *, role: str = "owner", platform_admin: bool = False) -> AdminClient:
    client = AdminClient(stack)
    r = client.login(make_user(stack, tenant, role=role, platform_admin=platform_admin))
    assert r.status_code == 303, r.text[:500]
    return client


def _scalar(stack: Any, query: Any) -> Any:
    async def run(s: Any) -> Any:
        return await s.scalar(query)

    return stack.seed.run(run)


def test_signed_out_admin_redirects_to_login_and_login_lands_on_dashboard(stack):
    tenant = stack.seed.tenant()
    client = AdminClient(stack)
    r = client.get("")
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
    r = client.get("/keys")
    assert r.status_code == 303 and r.headers["location"].endswith("/admin/login?next=%2Fadmin%2Fkeys")
    email = make_user(stack, tenant)
    r = client.post("/login", {"email": email, "password": PASSWORD, "next": "/admin/keys"}, csrf_from="/login")
    assert r.status_code == 303 and r.headers["location"] == "/admin/keys"
    assert client.get("/dashboard").status_code == 200
    # an open redirect is refused: "next" must stay inside the admin UI
    other = AdminClient(stack)
    r = other.post("/login", {"email": email, "password": PASSWORD, "next": "//evil.example/x"}, csrf_from="/login")
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"


def test_session_cookie_flags_and_rotation_on_login(stack):
    tenant = stack.seed.tenant()
    email = make_user(stack, tenant)
    client = AdminClient(stack)
    planted = secrets.token_urlsafe(32)  # a fixation attempt: a well-formed id the attacker knows
    client.http.cookies.set(admin_sessions.COOKIE, planted, domain="127.0.0.1", path="/admin")
    r = client.login(email)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(admin_sessions.COOKIE + "="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/;" in lowered + ";"
    assert "secure" not in lowered  # plain http here; see the https test below
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert value != planted and len(value) == 43  # 256 random bits, url-safe base64
    # only a digest is stored, never the cookie value
    assert _scalar(stack, sa.select(AdminSession.id).where(AdminSession.id == value)) is None
    assert _scalar(stack, sa.select(AdminSession.id).where(AdminSession.id == admin_sessions.hash_id(value)))


def test_https_session_cookie_is_secure_with_host_prefix(stack):
    """Behind a trusted proxy (uvicorn's forwarded-allow-ips: loopback), X-Forwarded-Proto: https makes it https."""
    tenant = stack.seed.tenant()
    host = stack.url.split("/")[2]
    email = make_user(stack, tenant)  # before the first page: with no user at all, /login sends to /setup
    client = AdminClient(stack, origin=f"https://{host}", headers={"x-forwarded-proto": "https"})
    form = client.get("/login")
    pre = next(h for h in form.headers.get_list("set-cookie") if h.startswith(admin_sessions.PRE_COOKIE + "="))
    assert "secure" in pre.lower()  # httpx keeps Secure cookies off this plain-http connection: send it by hand
    r = client.http.post(
        client.base + "/login",
        data={"csrf": CSRF.search(form.text).group(1), "email": email, "password": PASSWORD},
        headers={"cookie": pre.split(";", 1)[0]},
    )
    assert r.status_code == 303, r.text[:300]
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(admin_sessions.SECURE_COOKIE + "="))
    lowered = cookie.lower()
    assert "secure" in lowered and "httponly" in lowered and "samesite=lax" in lowered and "path=/;" in lowered + ";"
    assert "domain=" not in lowered


def test_logout_kills_the_session_server_side(stack):
    client = signed_in(stack, stack.seed.tenant())
    old = client.session_cookie
    assert old and client.get("/keys").status_code == 200
    r = client.post("/logout", csrf_from="/dashboard")
    assert r.status_code == 303 and "/admin/login" in r.headers["location"]
    assert _scalar(stack, sa.select(AdminSession.id).where(AdminSession.id == admin_sessions.hash_id(old))) is None
    replay = AdminClient(stack)
    replay.http.cookies.set(admin_sessions.COOKIE, old, domain="127.0.0.1", path="/admin")
    r = replay.get("/keys")
    assert r.status_code == 303 and "/admin/login" in r.headers["location"]


def _age_session(stack: Any, raw: str, **delta: timedelta) -> None:
    async def run(s: Any) -> None:
        row = await s.get(AdminSession, admin_sessions.hash_id(raw))
        for field, by in delta.items():
            setattr(row, field, getattr(row, field) - by)

    stack.seed.run(run)


@pytest.mark.parametrize(
    "aged",
    [
        {"last_seen_at": timedelta(minutes=31)},  # idle timeout: 30 minutes
        {"created_at": timedelta(hours=8, minutes=1)},  # absolute timeout: 8 hours, however active
    ],
    ids=["idle", "absolute"],
)
def test_sessions_expire_server_side(stack, aged):
    client = signed_in(stack, stack.seed.tenant())
    raw = client.session_cookie
    assert raw
    _age_session(stack, raw, **aged)
    r = client.get("/dashboard")
    assert r.status_code == 303 and "/admin/login" in r.headers["location"]
    assert _scalar(stack, sa.select(AdminSession.id).where(AdminSession.id == admin_sessions.hash_id(raw))) is None


def test_unknown_user_and_wrong_password_answer_identically(stack):
    email = make_user(stack, stack.seed.tenant())
    client = AdminClient(stack)
    token = client.csrf("/login")
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"
    a = client.http.post(client.base + "/login", data={"csrf": token, "email": unknown, "password": "x" * 12})
    b = client.http.post(client.base + "/login", data={"csrf": token, "email": email, "password": "x" * 12})
    assert a.status_code == b.status_code == 401
    assert a.text.replace(unknown, "EMAIL") == b.text.replace(email, "EMAIL")
    assert "Email or password is incorrect." in a.text


def test_login_is_throttled_per_account_and_address(stack):
    """At most PAIR_LIMIT failures per account from one address per hour; then that address is refused, unchecked."""
    email = make_user(stack, stack.seed.tenant())
    client = AdminClient(stack)
    token = client.csrf("/login")
    for _ in range(admin_throttle.PAIR_LIMIT):
        r = client.http.post(client.base + "/login", data={"csrf": token, "email": email, "password": "wrong-pass"})
        assert r.status_code == 401
    r = client.http.post(client.base + "/login", data={"csrf": token, "email": email, "password": PASSWORD})
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert admin_sessions.COOKIE not in r.headers.get("set-cookie", "")
    # another account from the same address is unaffected
    assert AdminClient(stack).login(make_user(stack, stack.seed.tenant())).status_code == 303


def test_parallel_guesses_do_not_slip_past_the_account_limit(stack):
    email = make_user(stack, stack.seed.tenant())
    client = AdminClient(stack)
    token = client.csrf("/login")
    cookies = dict(client.http.cookies)

    def guess(i: int) -> int:
        with httpx.Client(headers=client.http.headers, cookies=cookies, timeout=60) as http:
            data = {"csrf": token, "email": email, "password": f"guess-{i}"}
            return http.post(client.base + "/login", data=data).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(guess, range(40)))
    # At most the limit's worth of passwords is ever checked. Under heavy parallelism every guess may be
    # refused (each counts the others' provisional attempts): conservative, and only for this address.
    assert statuses.count(401) <= admin_throttle.PAIR_LIMIT and set(statuses) <= {401, 429}, statuses
    assert statuses.count(429) >= len(statuses) - admin_throttle.PAIR_LIMIT, statuses


def test_login_is_throttled_per_address(stack):
    email = make_user(stack, stack.seed.tenant())
    now = datetime.now(UTC)

    async def flood(s: Any) -> None:  # 100 failures from this address, each on another account
        s.add_all(
            LoginAttempt(email=f"spray-{i}@example.com", ip="127.0.0.1", created_at=now)
            for i in range(admin_throttle.IP_LIMIT)
        )

    async def clean(s: Any) -> None:
        await s.execute(sa.delete(LoginAttempt).where(LoginAttempt.email.like("spray-%")))

    stack.seed.run(flood)
    try:
        r = AdminClient(stack).login(email)
        assert r.status_code == 429
    finally:
        stack.seed.run(clean)
    assert AdminClient(stack).login(email).status_code == 303


def test_login_form_needs_its_csrf_token_and_same_origin(stack):
    email = make_user(stack, stack.seed.tenant())
    client = AdminClient(stack)
    client.csrf("/login")  # the pre-session cookie is set
    r = client.http.post(client.base + "/login", data={"email": email, "password": PASSWORD})
    assert r.status_code == 403
    r = client.http.post(client.base + "/login", data={"csrf": "0" * 64, "email": email, "password": PASSWORD})
    assert r.status_code == 403
    evil = AdminClient(stack, origin="https://evil.example")
    r = evil.post("/login", {"email": email, "password": PASSWORD}, csrf_from="/login")
    assert r.status_code == 403 and admin_sessions.COOKIE not in r.headers.get("set-cookie", "")


def test_security_headers_on_every_admin_response(stack):
    client = signed_in(stack, stack.seed.tenant())
    responses = [
        client.get("/dashboard"),
        client.get("/keys/does-not-exist"),  # 404 page
        client.get("/login"),  # redirect (signed in)
        AdminClient(stack).get("/login"),
        AdminClient(stack).get("/dashboard"),  # redirect to sign in
        client.get("/static/admin.css"),
        client.http.post(client.base + "/keys/new", data={}),  # 403 (no token)
    ]
    for r in responses:
        for name, value in HEADERS.items():
            assert r.headers.get(name, "").startswith(value), (r.request.url, r.status_code, name, r.headers.get(name))
    assert responses[0].headers["cache-control"] == "no-store"
    assert "<script>" not in responses[0].text  # no inline scripts: CSP forbids them


def test_sign_in_and_out_are_audited(stack):
    tenant = stack.seed.tenant()
    client = signed_in(stack, tenant)
    client.post("/logout", csrf_from="/dashboard")
    query = sa.select(AuditLog.action).where(AuditLog.tenant_id == tenant.id, AuditLog.action.like("session.%"))

    async def actions_of(s: Any) -> list[str]:
        return list(await s.scalars(query))

    actions = stack.seed.run(actions_of)
    assert sorted(actions) == ["session.login", "session.logout"]


def test_first_run_setup_creates_the_owner_once(tmp_path):
    """On a database without users, /admin leads to setup; afterwards setup is closed."""
    from support import GatewayServer, base_settings, prepare_database

    settings = base_settings(f"sqlite:///{tmp_path / 'fresh.db'}", None)
    prepare_database(settings)
    server = GatewayServer(settings).start()
    try:
        stack = type("Fresh", (), {"url": server.url})()
        client = AdminClient(stack)
        r = client.get("/login")
        assert r.status_code == 303 and r.headers["location"] == "/admin/setup"
        form = {"tenant_name": "Acme", "email": "first@acme.example", "password": "short", "password2": "short"}
        r = client.post("/setup", form, csrf_from="/setup")
        assert r.status_code == 400 and "Use at least 12 characters." in r.text
        form.update(password=PASSWORD, password2=PASSWORD)
        r = client.post("/setup", form, csrf_from="/setup")
        assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"
        page = client.get("/platform/tenants")
        assert page.status_code == 200 and "Acme" in page.text  # owner and platform admin
        other = AdminClient(stack)
        assert other.get("/setup").headers["location"] == "/admin/login"
        r = other.http.post(other.base + "/setup", data={**form, "email": "second@acme.example"})
        assert r.status_code == 403  # no valid form token; and with one, setup only redirects to sign-in
    finally:
        server.stop()


def test_admin_lives_under_the_root_path(tmp_path):
    from dataclasses import replace

    from support import GatewayServer, Seeder, base_settings, prepare_database

    settings = replace(base_settings(f"sqlite:///{tmp_path / 'rooted.db'}", None), root_path="/gw")
    prepare_database(settings)
    server = GatewayServer(settings).start()
    try:
        seed = Seeder(server.settings)
        stack = type("Rooted", (), {"url": server.url, "seed": seed})()
        assert server.url.endswith("/gw")
        client = AdminClient(stack)
        r = client.get("/keys")
        assert r.status_code == 303 and r.headers["location"] == "/gw/admin/login?next=%2Fgw%2Fadmin%2Fkeys"
        r = client.login(make_user(stack, seed.tenant()))
        assert r.status_code == 303 and r.headers["location"] == "/gw/admin/dashboard"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(admin_sessions.COOKIE + "="))
        assert "Path=/gw/" in cookie
        page = client.get("/dashboard").text
        assert 'href="/gw/admin/static/admin.css?v=' in page and 'action="/gw/admin/logout"' in page
        assert client.get("/static/admin.js").status_code == 200
    finally:
        server.stop()


def test_an_email_of_another_tenant_is_not_disclosed_and_each_account_signs_in_to_its_own(stack):
    """Issue 12, item 10: a tenant owner learned that an address had an account elsewhere from a 409."""
    first, second = stack.seed.tenant(), stack.seed.tenant()
    email = make_user(stack, first)
    other_password = "another long passphrase"
    stack.seed.run(lambda s: tenants.create_user(s, tenant=second, email=email, password=other_password))
    with pytest.raises(Conflict, match="in this tenant"):  # the same tenant twice is still a conflict
        stack.seed.run(lambda s: tenants.create_user(s, tenant=second, email=email, password=other_password))
    for tenant, password in ((first, PASSWORD), (second, other_password)):
        client = AdminClient(stack)
        try:
            assert client.login(email, password).status_code == 303
            who = _scalar(stack, sa.select(User.tenant_id).where(User.email == email, User.tenant_id == tenant.id))
            assert who == tenant.id
            assert tenant.name in client.get("/dashboard").text  # signed in to the account the password opens
        finally:
            client.close()
    client = AdminClient(stack)
    assert client.login(email, "neither of them").status_code == 401
    client.close()


@pytest.fixture
def no_trusted_proxy(stack):
    from support import GatewayServer

    server = GatewayServer(replace(stack.settings, trusted_proxies="")).start()
    yield SimpleNamespace(url=server.url, seed=stack.seed)
    server.stop()


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(no_trusted_proxy):
    """Issue 12, item 10: uvicorn trusted loopback by default, so X-Forwarded-For from the host beat the IP throttle."""
    stack = no_trusted_proxy
    tenant = stack.seed.tenant()
    email = make_user(stack, tenant)
    client = AdminClient(stack, headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"})
    try:
        form = client.get("/login")
        assert not any("secure" in h.lower() for h in form.headers.get_list("set-cookie"))  # still plain http
        assert client.login(email).status_code == 303
    finally:
        client.close()
    query = sa.select(AuditLog.detail).where(AuditLog.tenant_id == tenant.id, AuditLog.action == "session.login")
    assert _scalar(stack, query)["ip"] == "127.0.0.1"  # the connection's address, not the header's
