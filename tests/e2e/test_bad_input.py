"""Bad input at both doors, on both backends: every refusal answers in the door's dialect, names
what is wrong, and never reaches the upstream."""

from __future__ import annotations

import secrets
import socket
import string
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from gateway.api import asgi
from gateway.manage import tokens
from gateway.testing.fake_upstream import Reply

MIB = 1024 * 1024
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}
MODELS = {"anthropic": "my-claude", "openai": "my-gpt"}
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
ANTHROPIC_TYPES |= {405: "invalid_request_error", 413: "request_too_large"}
OPENAI_CODES = {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large"}


@pytest.fixture(params=["anthropic", "openai"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def valid_body(door: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODELS[door], "messages": [{"role": "user", "content": "hi"}]}
    if door == "anthropic":
        body["max_tokens"] = 100
    body.update(changes)
    return body


def post(world: Any, door: str, body: Any = None, *, raw: bytes | None = None, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {world.key}", "content-type": "application/json"}
    headers.update(kw.pop("headers", {}))
    content = raw if raw is not None else msgspec.json.encode(body)
    return httpx.post(world.url + PATHS[door], content=content, headers=headers, timeout=30, **kw)


def assert_error(r: httpx.Response, door: str, status: int, *needles: str) -> str:
    """The response is ``status`` with ``door``'s error envelope; its message contains every needle."""
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    if door == "anthropic":
        assert doc["type"] == "error"
        assert set(doc["error"]) == {"type", "message"}
        assert doc["error"]["type"] == ANTHROPIC_TYPES[status]
    else:
        assert set(doc) == {"error"}
        assert set(doc["error"]) == {"message", "type", "param", "code"}
        assert doc["error"]["type"] == "invalid_request_error"
        assert doc["error"]["code"] == OPENAI_CODES.get(status)
    message = doc["error"]["message"]
    assert isinstance(message, str)
    for needle in needles:
        assert needle.lower() in message.lower(), message
    assert r.headers.get("x-should-retry") == "false"  # a client retrying the same request cannot succeed
    return message


# ---------------------------------------------------------------- malformed bodies

MALFORMED = {
    "truncated": (b'{"model": "M", "messages": [{"role": "user", "cont', "not valid JSON"),
    "trailing-garbage": (b'{"model": "M", "messages": []} trailing', "not valid JSON"),
    "two-documents": (b'{"model": "M"}{"model": "M"}', "not valid JSON"),
    "empty": (b"", "empty"),
    "whitespace-only": (b" \r\n\t ", "empty"),
    "json-array": (b'[{"model": "M", "messages": []}]', "must be a JSON object"),
    "json-null": (b"null", "must be a JSON object"),
    "json-string": (b'"hello"', "must be a JSON object"),
    "json-number": (b"42", "must be a JSON object"),
    "utf8-bom": (b'\xef\xbb\xbf{"model": "M", "messages": []}', "not valid JSON"),
    "invalid-utf8": (b'{"model": "M\xff\xfe", "messages": []}', "not valid JSON"),
    "nan-literal": (b'{"model": "M", "messages": [], "temperature": NaN}', "not valid JSON"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_is_400_in_dialect(world, door, case):
    raw, needle = MALFORMED[case]
    r = post(world, door, raw=raw.replace(b'"M"', b'"' + MODELS[door].encode() + b'"'))
    assert_error(r, door, 400, needle)
    assert world.fake.requests == []


def test_form_encoded_body_is_400(world, door):
    r = post(
        world,
        door,
        raw=f"model={MODELS[door]}&max_tokens=10&messages=hi".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, door, 400, "JSON")
    assert world.fake.requests == []


# ---------------------------------------------------------------- size limit (32 MiB)


def _sized_body(door: str, size: int) -> bytes:
    head = msgspec.json.encode(valid_body(door, messages=[{"role": "user", "content": ""}]))
    return head.replace(b'"content":""', b'"content":"' + b"a" * (size - len(head)) + b'"')


def test_body_over_the_limit_is_413_quickly(world, door):
    raw = _sized_body(door, 33 * MIB)
    assert len(raw) == 33 * MIB
    start = time.monotonic()
    r = post(world, door, raw=raw)
    elapsed = time.monotonic() - start
    assert_error(r, door, 413, "too large")
    assert elapsed < 5
    assert world.fake.requests == []


def test_413_is_decided_from_content_length_before_the_body_arrives(world, door):
    """Only the headers are sent: the refusal must not wait for 33 MiB that never come."""
    path = world.url.split("://", 1)[1].split("/", 1)
    host, port = path[0].split(":")
    prefix = "/" + path[1] if len(path) > 1 else ""
    head = (
        f"POST {prefix}{PATHS[door]} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {world.key}\r\n"
        f"content-type: application/json\r\ncontent-length: {33 * MIB}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"model": ')
        start = time.monotonic()
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, "connection closed without a response"
            reply += chunk
        assert time.monotonic() - start < 2
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", status_line
    assert world.fake.requests == []


def test_chunked_body_over_the_limit_is_413(world, door):
    """No content-length: the limit is enforced while the body streams in."""

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "' + MODELS[door].encode() + b'", "max_tokens": 5, "messages": [{"role": "user", "content": "'
        for _ in range(34):
            yield b"a" * MIB
        yield b'"}]}'

    headers = {"authorization": f"Bearer {world.key}", "content-type": "application/json"}
    r = httpx.post(world.url + PATHS[door], content=chunks(), headers=headers, timeout=30)
    assert_error(r, door, 413, "too large")
    assert world.fake.requests == []


def test_body_just_under_the_limit_is_relayed(world, door):
    """The limit is 32 MiB, not a framework default (Litestar's is 10 MB)."""
    world.fake.enqueue(Reply(text="big ok", usage=(1, 1)))
    r = post(world, door, raw=_sized_body(door, 31 * MIB))
    assert r.status_code == 200, r.text[:500]
    assert len(world.fake.requests[-1].body) > 31 * MIB - 100


# ---------------------------------------------------------------- fields the relay depends on

_DROP = object()
FIELD_CASES: dict[str, tuple[str, Any, str]] = {
    # name: (field, value or _DROP, needle in the message)
    "model-missing": ("model", _DROP, "model"),
    "model-number": ("model", 123, "model"),
    "model-list": ("model", ["my-gpt"], "model"),
    "model-null": ("model", None, "model"),
    "model-empty": ("model", "  ", "model"),
    "messages-missing": ("messages", _DROP, "messages"),
    "messages-object": ("messages", {}, "messages"),
    "messages-string": ("messages", "hi", "messages"),
    "stream-yes": ("stream", "yes", "stream"),
    "stream-number": ("stream", 1, "stream"),
    "max_tokens-negative": ("max_tokens", -1, "max_tokens"),
    "max_tokens-zero": ("max_tokens", 0, "max_tokens"),
    "max_tokens-string": ("max_tokens", "100", "max_tokens"),
    "max_tokens-float": ("max_tokens", 100.5, "max_tokens"),
    "max_tokens-bool": ("max_tokens", True, "max_tokens"),
    "max_tokens-huge": ("max_tokens", 10**12, "max_tokens"),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_bad_field_is_400_naming_it(world, door, case):
    name, value, needle = FIELD_CASES[case]
    body = valid_body(door)
    if value is _DROP:
        del body[name]
    else:
        body[name] = value
    r = post(world, door, body)
    assert_error(r, door, 400, needle)
    if door == "openai":
        assert r.json()["error"]["param"] == name
    assert world.fake.requests == []


@pytest.mark.parametrize(("field", "value"), [("n", 2), ("logprobs", True)])
def test_unsupported_openai_fields_to_an_anthropic_upstream_name_the_param(world, field, value):
    r = post(world, "openai", valid_body("openai", model="my-claude", **{field: value}))
    assert_error(r, "openai", 400, field)
    assert r.json()["error"]["param"] == field
    assert world.fake.requests == []


def test_max_tokens_missing_on_the_anthropic_door(world):
    body = valid_body("anthropic")
    del body["max_tokens"]
    assert_error(post(world, "anthropic", body), "anthropic", 400, "max_tokens", "required")
    assert world.fake.requests == []


def test_max_completion_tokens_checked_on_the_openai_door(world):
    r = post(world, "openai", valid_body("openai", max_completion_tokens=-5))
    assert_error(r, "openai", 400, "max_completion_tokens")
    assert world.fake.requests == []


@pytest.mark.parametrize("number", ["1e309", "-1e309", "9" * 5000, "-" + "9" * 5000, "18446744073709551616"])
def test_out_of_range_max_tokens_is_400_naming_the_field(world, door, number):
    """Numbers no machine type holds (msgspec and Python's int-string limit refuse them) are the client's error."""
    raw = msgspec.json.encode(valid_body(door, max_tokens=424242)).replace(b"424242", number.encode())
    assert_error(post(world, door, raw=raw), door, 400, "max_tokens")
    assert world.fake.requests == []


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("where", ["message", "tool_schema"])
def test_deep_nesting_never_crashes(world, door, depth, where):
    nested = "[" * depth + "]" * depth
    if where == "message":
        raw = msgspec.json.encode(valid_body(door, messages=[{"role": "user", "content": "@@"}]))
    else:
        tool = {"name": "t", "description": "d", "input_schema": {"type": "object", "default": "@@"}}
        if door == "openai":
            tool = {"type": "function", "function": {"name": "t", "parameters": {"type": "object", "default": "@@"}}}
        raw = msgspec.json.encode(valid_body(door, tools=[tool]))
    start = time.monotonic()
    r = post(world, door, raw=raw.replace(b'"@@"', nested.encode()))
    assert time.monotonic() - start < 5
    if r.status_code == 400:
        assert_error(r, door, 400, "nested too deeply")
        assert world.fake.requests == []
    else:
        assert r.status_code == 200, r.text[:500]  # relayed as is: acceptable, the upstream judges it
    # The process is alive and serving.
    assert post(world, door, valid_body(door)).status_code == 200


# ---------------------------------------------------------------- unknown models


@pytest.mark.parametrize(
    ("door_name", "asked", "suggested"), [("openai", "my-gtp", "my-gpt"), ("anthropic", "my-claud", "my-claude")]
)
def test_unknown_model_is_404_with_close_matches(world, door_name, asked, suggested):
    r = post(world, door_name, valid_body(door_name, model=asked))
    message = assert_error(r, door_name, 404, asked, "did you mean", repr(suggested))
    assert "upstream-id" not in message  # upstream model ids are not the client's business
    assert world.fake.requests == []


def test_unknown_model_without_close_match_has_no_suggestion(world, door):
    r = post(world, door, valid_body(door, model="zqxj-totally-unrelated-9000"))
    message = assert_error(r, door, 404, "zqxj-totally-unrelated-9000", "not found")
    assert "did you mean" not in message
    assert world.fake.requests == []


def test_a_custom_model_refused_to_a_key_without_custom_models_says_so(stack, world, door):
    """The model exists (the tenant's own): "not found" would send the user hunting for a typo."""
    key = stack.seed.key(world.tenant, allow_custom_models=False).secret
    r = post(world, door, valid_body(door), headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 403, r.text
    message = r.json()["error"]["message"]
    assert "custom model" in message and "--allow-custom-models" in message, message
    assert world.fake.requests == []


def test_another_tenants_custom_model_stays_not_found(stack, world, door):
    """The 403 above names only the key's own tenant's models: another tenant's stay a plain 404."""
    stranger = stack.seed.key(stack.seed.tenant(), allow_custom_models=False).secret
    r = post(world, door, valid_body(door), headers={"authorization": f"Bearer {stranger}"})
    message = assert_error(r, door, 404, MODELS[door], "not found")
    assert "custom model" not in message
    assert world.fake.requests == []


def test_an_alias_to_no_model_names_the_target(stack, world, door):
    key = stack.seed.key(world.tenant, aliases=[("claude-*", "my-gtp")]).secret
    r = post(world, door, valid_body(door, model="claude-sonnet-4-5"), headers={"authorization": f"Bearer {key}"})
    assert_error(r, door, 404, "'claude-sonnet-4-5'", "alias", "'my-gtp'", "did you mean 'my-gpt'")
    assert world.fake.requests == []


def test_a_404_that_is_no_model_has_no_model_not_found_code(stack, world):
    """Only a missing model is OpenAI's ``model_not_found`` (SDKs turn it into "model not found")."""
    cases = {
        "/v1/models/nope": "model_not_found",
        "/metrics": "not_found",  # switched off in these tests
        "/v1/nowhere": "not_found",
    }
    for path, code in cases.items():
        r = httpx.get(world.url + path, headers={"authorization": f"Bearer {world.key}"}, timeout=10)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == code, (path, r.text)


# ---------------------------------------------------------------- keys

_BASE62 = string.digits + string.ascii_letters


def random_key() -> str:
    return "sk-" + "".join(secrets.choice(_BASE62) for _ in range(48))


BAD_KEYS: dict[str, tuple[dict[str, str], str]] = {
    # name: (headers, needle in the message)
    "missing": ({}, "missing"),
    "empty-x-api-key": ({"x-api-key": ""}, "missing"),
    "sk-short": ({"authorization": "Bearer sk-short"}, "malformed"),
    "sk-short-x-api-key": ({"x-api-key": "sk-short"}, "malformed"),
    "bearer-nothing": ({"authorization": "Bearer"}, "malformed"),
    "not-sk": ({"authorization": "Bearer hello-this-is-not-a-relay-key"}, "malformed"),
    "not-base62": ({"x-api-key": "sk-" + "!" * 48}, "malformed"),
    "sql-metacharacters": ({"x-api-key": "' OR 1=1--"}, "malformed"),
    "long-value": ({"authorization": "Bearer sk-" + "a" * 4000}, "malformed"),
    "unknown-bearer": ({"authorization": f"Bearer {random_key()}"}, "no such key"),
    "unknown-x-api-key": ({"x-api-key": random_key()}, "no such key"),
    "unknown-bare": ({"authorization": random_key()}, "no such key"),
}


@pytest.mark.parametrize("kind", list(BAD_KEYS))
def test_bad_key_is_401_saying_why(world, door, kind):
    headers, needle = BAD_KEYS[kind]
    r = httpx.post(world.url + PATHS[door], json=valid_body(door), headers=headers, timeout=10)
    assert_error(r, door, 401, needle)
    for value in headers.values():
        if len(value) > 12:
            assert value.split()[-1] not in r.text  # the presented key is never echoed
    assert world.fake.requests == []


def test_valid_x_api_key_wins_over_a_bad_bearer(world, door):
    headers = {"x-api-key": world.key, "authorization": "Bearer sk-short"}
    r = httpx.post(world.url + PATHS[door], json=valid_body(door), headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def _poll_until_refused(url: str, key: str, door: str, within_s: float) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    while True:
        r = httpx.post(url + PATHS[door], json=valid_body(door), headers={"x-api-key": key}, timeout=10)
        elapsed = time.monotonic() - start
        if r.status_code != 200 or elapsed > within_s:
            return r, elapsed
        time.sleep(0.1)


def test_revoked_key_refused_within_5_seconds(world, stack, door):
    r = httpx.post(world.url + PATHS[door], json=valid_body(door), headers={"x-api-key": world.key}, timeout=10)
    assert r.status_code == 200, r.text  # and the key is now in the gateway's cache
    stack.seed.revoke(world.key_id)
    r, elapsed = _poll_until_refused(world.url, world.key, door, within_s=5.0)
    assert_error(r, door, 401, "revoked")
    assert elapsed <= 5.0
    for _ in range(3):  # and it stays refused
        assert post(world, door, valid_body(door)).status_code == 401


def test_expired_key_is_refused(world, stack, door):
    past = stack.seed.key(world.tenant, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    r = httpx.post(world.url + PATHS[door], json=valid_body(door), headers={"x-api-key": past.secret}, timeout=10)
    assert_error(r, door, 401, "expired")
    assert world.fake.requests == []


def test_key_expiring_soon_stops_working(world, stack, door):
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    soon = stack.seed.key(world.tenant, expires_at=expires)
    r = httpx.post(world.url + PATHS[door], json=valid_body(door), headers={"x-api-key": soon.secret}, timeout=10)
    assert r.status_code == 200, r.text
    r, _ = _poll_until_refused(world.url, soon.secret, door, within_s=5.0)
    assert_error(r, door, 401, "expired")
    assert datetime.now(UTC) >= expires  # not refused early
    # Expiry is checked on every request, not only when the cache refreshes: well under the key cache TTL.
    assert datetime.now(UTC) - expires < timedelta(seconds=1)


def test_other_methods_on_a_door_are_405_in_its_dialect_and_a_trailing_slash_still_serves(world, door):
    r = httpx.get(world.url + PATHS[door], headers={"authorization": f"Bearer {world.key}"})
    assert_error(r, door, 405, "POST")
    assert r.headers["allow"] == "POST"
    assert world.fake.requests == []
    world.fake.enqueue(Reply(text="ok", usage=(3, 1)))
    r = httpx.post(world.url + PATHS[door] + "/", json=valid_body(door), headers={"x-api-key": world.key})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("where", ["door", "management"])
def test_a_body_that_never_arrives_is_408_and_the_connection_closes(stack, world, door, where, monkeypatch):
    """Issue 12, item 7: a client declaring 1,000 bytes and sending 1 held its connection 65 s."""
    monkeypatch.setattr(asgi, "BODY_TIMEOUT_S", 0.5)  # the gateway runs in this process (15 s in production)
    path = world.url.split("://", 1)[1].split("/", 1)
    host, port = path[0].split(":")
    prefix = "/" + path[1] if len(path) > 1 else ""
    target, token = PATHS[door], world.key
    if where == "management":  # a Litestar route: it reads the body once the token is checked
        target = "/api/v1/keys"
        token = stack.seed.run(
            lambda s: tokens.create_token(s, tenant=world.tenant, secret_key=stack.settings.secret_key, name="t")
        ).secret
    head = (
        f"POST {prefix}{target} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"{")
        start = time.monotonic()
        reply = b""
        while chunk := sock.recv(65536):  # read to the server's close
            reply += chunk
        assert time.monotonic() - start < 5
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"408", reply[:300]
    assert world.fake.requests == []


def test_a_requests_conversion_notes_are_kept_in_its_ledger_row(stack, world):
    """What translation changed reaches the request's row (the admin UI's request page shows it)."""
    world.fake.enqueue(Reply(text="ok"))
    r = post(world, "openai", valid_body("openai", model="my-claude", stop=["\n\n", "END"]))
    assert r.status_code == 200 and "stop_whitespace_dropped" in r.headers["relay-conversion-notes"]
    (row,) = stack.seed.usage_rows(world.tenant, expect=1)
    assert "stop_whitespace_dropped" in (row.conversion_notes or "").split(",")
