"""The first hour, in the admin UI: one-time passwords, the account page, members, POST/redirect/GET, and a
sign-in throttle an attacker cannot use to lock the owner out. Real server, plain httpx."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import httpx
import sqlalchemy as sa
from test_admin_access import create_key
from test_admin_auth import PASSWORD, AdminClient, make_user, signed_in

from admin_ui import throttle
from gateway.db.tables import AdminFlash, AdminSession, ApiKey, AuditLog, User
from gateway.manage import accounts

NEW_PASSWORD = "a brand new passphrase"
SECRET_FIELD = re.compile(r'readonly value="([^"]+)"')


def _user(stack: Any, email: str) -> User:
    return stack.seed.run(lambda s: s.scalar(sa.select(User).where(User.email == email)))


def _one_time(stack: Any, email: str) -> str:
    """Reset the account like ``relay users reset-password`` does; the one-time password."""

    async def reset(s: Any) -> str:
        user = await s.scalar(sa.select(User).where(User.email == email))
        return await accounts.reset_password(s, user, actor="test")

    return stack.seed.run(reset)


def _all(stack: Any, query: Any) -> list[Any]:
    async def run(s: Any) -> list[Any]:
        return list(await s.scalars(query))

    return stack.seed.run(run)


def _count(stack: Any, query: Any) -> int:
    async def run(s: Any) -> int:
        return int(await s.scalar(query) or 0)

    return stack.seed.run(run)


def test_a_one_time_password_must_be_changed_before_any_other_page(stack):
    tenant = stack.seed.tenant()
    email = make_user(stack, tenant)
    once = _one_time(stack, email)
    client = AdminClient(stack)
    r = client.login(email, once)
    assert r.status_code == 303 and r.headers["location"] == "/admin/account/password"
    for path in ("/dashboard", "/keys", "/account", "/members", "/platform/tenants", "/keys/new"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/admin/account/password", path
    token = client.csrf("/account/password")
    r = client.post("/keys/new", {"csrf": token, "name": "sneaky"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/account/password"
    assert _count(stack, sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant.id)) == 0
    assert client.get("/static/admin.css").status_code == 200
    api = client.http.get(stack.url + "/api/v1/keys")
    assert api.status_code == 403 and "one-time password" in api.text  # the management API waits too

    def change(current: str, new: str, again: str | None = None) -> httpx.Response:
        data = {"current": current, "password": new, "password2": again or new}
        return client.post("/account/password", data, csrf_from="/account/password")

    r = change("not the one-time password", NEW_PASSWORD)
    assert r.status_code == 400 and "The current password is not right." in r.text
    r = change(once, NEW_PASSWORD, "something else entirely")
    assert r.status_code == 400 and "The two new passwords differ." in r.text
    r = change(once, "short")
    assert r.status_code == 400 and "at least 12 characters" in r.text
    r = change(once, NEW_PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard?notice=password-changed"
    assert client.get("/keys").status_code == 200  # the same session goes on
    assert _user(stack, email).must_change_password is False
    assert AdminClient(stack).login(email, NEW_PASSWORD).headers["location"] == "/admin/dashboard"


def test_account_page_lists_sessions_changes_the_password_and_signs_out_elsewhere(stack):
    tenant = stack.seed.tenant()
    email = make_user(stack, tenant)
    here, there = AdminClient(stack), AdminClient(stack)
    assert here.login(email).status_code == there.login(email).status_code == 303
    page = here.get("/account")
    assert page.status_code == 200 and email in page.text
    assert page.text.count("<tr>") == 1 + 2 and page.text.count("this session") == 1  # header + two sessions
    assert "127.0.0.1" in page.text and "Sign out everywhere else" in page.text

    data = {"current": PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    r = here.post("/account/password", data, csrf_from="/account")
    assert r.status_code == 303 and r.headers["location"] == "/admin/account?notice=password-changed"
    assert here.get("/account").status_code == 200  # this session stays
    assert there.get("/account").status_code == 303  # the other one ended
    assert AdminClient(stack).login(email).status_code == 401  # the old password is gone

    third = AdminClient(stack)
    assert there.login(email, NEW_PASSWORD).status_code == third.login(email, NEW_PASSWORD).status_code == 303
    r = here.post("/account/sessions/others", csrf_from="/account")
    assert r.status_code == 303 and r.headers["location"] == "/admin/account?notice=signed-out-others"
    assert there.get("/dashboard").status_code == third.get("/dashboard").status_code == 303
    assert here.get("/dashboard").status_code == 200
    actions = _all(stack, sa.select(AuditLog.action).where(AuditLog.tenant_id == tenant.id, AuditLog.target == email))
    assert {"user.password_change", "session.logout_others"} <= set(actions)


def test_owners_reset_and_remove_members_and_the_guards_show_on_the_page(stack):
    tenant = stack.seed.tenant()
    owner = signed_in(stack, tenant)
    member_email = make_user(stack, tenant, role="member")
    member = AdminClient(stack)
    assert member.login(member_email).status_code == 303
    target = _user(stack, member_email)

    r = owner.post(f"/members/{target.id}/reset", csrf_from="/members")
    assert r.status_code == 303 and "flash=" in r.headers["location"]
    shown = owner.follow(r)
    password = SECRET_FIELD.search(shown.text)
    assert password and len(password.group(1)) >= 16 and "password was reset" in shown.text
    assert password.group(1) not in owner.follow(r).text  # shown once: the same URL again shows nothing
    assert member.get("/dashboard").status_code == 303  # the member's sessions ended
    again = AdminClient(stack)
    assert again.login(member_email, password.group(1)).headers["location"] == "/admin/account/password"

    r = owner.post(f"/members/{target.id}/delete", csrf_from="/members")
    assert r.status_code == 303 and r.headers["location"] == "/admin/members?notice=member-removed"
    assert _user(stack, member_email) is None and again.get("/account/password").status_code == 303
    query = sa.select(sa.func.count()).select_from(AdminSession).where(AdminSession.user_id == target.id)
    assert _count(stack, query) == 0

    # The last owner cannot leave; a tenant owner cannot reset a platform admin's password (a platform takeover).
    me = stack.seed.run(lambda s: s.scalar(sa.select(User).where(User.tenant_id == tenant.id, User.role == "owner")))
    r = owner.post(f"/members/{me.id}/delete", csrf_from="/members")
    assert r.status_code == 400 and "The tenant needs at least one owner" in r.text and 'role="alert"' in r.text
    platform = _user(stack, make_user(stack, tenant, role="admin", platform_admin=True))
    r = owner.post(f"/members/{platform.id}/reset", csrf_from="/members")
    assert r.status_code == 403 and "Only a platform admin can reset the password of a platform admin" in r.text
    r = owner.post(f"/members/{platform.id}/delete", csrf_from="/members")
    assert r.status_code == 403 and _user(stack, platform.email) is not None
    other = stack.seed.tenant()
    outsider = _user(stack, make_user(stack, other, role="member"))
    assert owner.post(f"/members/{outsider.id}/reset", csrf_from="/members").status_code == 404


def test_creating_forms_redirect_and_show_the_secret_once_from_a_sealed_flash(stack):
    tenant = stack.seed.tenant()
    owner = signed_in(stack, tenant, platform_admin=True)
    keys_before = _count(stack, sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant.id))
    r = owner.post("/keys/new", {"name": "prg", "budget_period": "month"}, csrf_from="/keys/new")
    assert r.status_code == 303 and re.fullmatch(r"/admin/keys/[0-9a-f]{32}\?flash=[0-9a-f]{32}", r.headers["location"])
    sealed = _all(stack, sa.select(AdminFlash.sealed))
    assert sealed and all(v.startswith("v1:") and "sk-" not in v for v in sealed)  # sealed at rest
    stranger = signed_in(stack, tenant)  # another session can neither read nor spend this session's flash
    assert 'id="secret"' not in stranger.http.get(r.url.join(r.headers["location"])).text
    page = owner.follow(r)
    secret = re.search(r'id="secret" type="text" readonly value="(sk-[A-Za-z0-9]+)"', page.text)
    assert page.status_code == 200 and secret
    reload = owner.follow(r)
    assert reload.status_code == 200 and secret.group(1) not in reload.text and 'id="secret"' not in reload.text
    keys_after = _count(stack, sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant.id))
    assert keys_after == keys_before + 1
    assert create_key(owner, name="helper")[1].startswith("sk-")

    email = f"invited-{secrets.token_hex(3)}@example.com"
    r = owner.post("/members", {"email": email, "role": "member"}, csrf_from="/members")
    assert r.status_code == 303 and "flash=" in r.headers["location"]
    page = owner.follow(r).text
    invited = SECRET_FIELD.search(page)
    assert invited and email in page and invited.group(1) not in owner.follow(r).text
    assert _user(stack, email).must_change_password is True

    name = f"prg-{secrets.token_hex(3)}"
    r = owner.post(
        "/platform/tenants", {"tenant_name": name, "email": "boss@prg.example"}, csrf_from="/platform/tenants"
    )
    assert r.status_code == 303
    page = owner.follow(r).text
    boss = SECRET_FIELD.search(page)
    assert boss and name in page and boss.group(1) not in owner.follow(r).text
    r = owner.post("/platform/tenants", {"tenant_name": name}, csrf_from="/platform/tenants")
    assert r.status_code == 400 and "already exists" in r.text  # a failed form re-renders; nothing is created


def _from(address: str, stack: Any) -> AdminClient:
    client = AdminClient(stack)
    client.http.close()
    transport = httpx.HTTPTransport(local_address=address)
    client.http = httpx.Client(transport=transport, headers=dict(client.http.headers), timeout=60)
    return client


def test_an_attacker_at_one_address_cannot_lock_the_owner_out(stack):
    """The attacker (127.0.0.2) fails past every limit, even claiming the victim's address in X-Forwarded-For
    (an untrusted hop: ignored); the owner (127.0.0.3) still signs in, at most a few seconds slower."""
    email = make_user(stack, stack.seed.tenant())
    attacker = _from("127.0.0.2", stack)
    token = attacker.csrf("/login")
    statuses = []
    for i in range(throttle.PAIR_LIMIT + 5):
        data = {"csrf": token, "email": email, "password": f"guess-{i}"}
        statuses.append(
            attacker.http.post(attacker.base + "/login", data=data, headers={"x-forwarded-for": "127.0.0.3"})
        )
    codes = [r.status_code for r in statuses]
    assert codes == [401] * throttle.PAIR_LIMIT + [429] * 5, codes
    r = attacker.login(email)  # even the right password, from there
    assert r.status_code == 429
    logins = _all(stack, sa.select(AuditLog.id).where(AuditLog.target == email, AuditLog.action == "session.login"))
    assert logins == []  # no sign-in happened

    victim = _from("127.0.0.3", stack)
    started = time.monotonic()
    r = victim.login(email)
    took = time.monotonic() - started
    assert r.status_code == 303 and r.headers["location"] == "/admin/dashboard"
    assert took < throttle.MAX_DELAY_S + 5, took
    assert _all(stack, sa.select(AdminSession.ip).join(User).where(User.email == email)) == ["127.0.0.3"]
    attacker.close()
    victim.close()
