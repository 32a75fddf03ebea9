"""The webhook wire format: the signature a receiver verifies, the retry schedule, the event body."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json

import pytest

from gateway.errors import InvalidRequest
from gateway.manage.webhooks import check_events, check_url, parse_events
from gateway.webhooks.outbox import event_body
from gateway.webhooks.signing import MAX_ATTEMPTS, backoff_s, new_secret, signature, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"evt_1","type":"webhook.test"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    header = signature(SECRET, 1_700_000_000, BODY)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_signed_body_and_refuses_tampering():
    header = signature(SECRET, 1_700_000_000, BODY)
    assert verify(SECRET, header, BODY, now=1_700_000_010)
    assert not verify(SECRET, header, BODY.replace(b"test", b"tost"), now=1_700_000_010)
    assert not verify("whsec_other", header, BODY, now=1_700_000_010)
    # a replayed request ages out; a forged timestamp breaks the MAC
    assert not verify(SECRET, header, BODY, now=1_700_000_000 + 301)
    forged = header.replace("t=1700000000", "t=1700000300")
    assert not verify(SECRET, forged, BODY, now=1_700_000_300)
    assert not verify(SECRET, "v1=abc", BODY, now=1_700_000_000)
    assert not verify(SECRET, "garbage", BODY, now=1_700_000_000)


def test_verify_accepts_any_of_several_v1_values():
    good = signature(SECRET, 1_700_000_000, BODY).split("v1=")[1]
    assert verify(SECRET, f"t=1700000000,v1={'0' * 64},v1={good}", BODY, now=1_700_000_000)


def test_secrets_are_prefixed_and_random():
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_") and b.startswith("whsec_") and a != b
    assert len(a) >= len("whsec_") + 43  # 32 random bytes, urlsafe base64


def test_backoff_doubles_from_ten_seconds_and_caps_at_an_hour():
    schedule = [backoff_s(n) for n in range(1, MAX_ATTEMPTS)]
    assert schedule[:4] == [10.0, 20.0, 40.0, 80.0]
    assert all(b <= 3600.0 for b in schedule) and backoff_s(20) == 3600.0
    assert all(later >= earlier for earlier, later in itertools.pairwise(schedule))
    assert backoff_s(1, base_s=0.5) == 0.5


def test_event_body_shape():
    doc = json.loads(event_body("budget.threshold", "t1", {"threshold": 80}, event_id="evt_x"))
    assert doc == {
        "id": "evt_x",
        "type": "budget.threshold",
        "created_at": doc["created_at"],
        "tenant_id": "t1",
        "data": {"threshold": 80},
    }
    assert doc["created_at"].endswith("+00:00")
    assert json.loads(event_body("key.disabled", None, {}))["id"].startswith("evt_")


def test_events_and_urls_are_checked():
    assert parse_events(" key.disabled, budget.threshold,") == ["budget.threshold", "key.disabled"]
    assert parse_events("") == [] and check_events([]) == []
    with pytest.raises(InvalidRequest, match="unknown event 'budget'"):
        parse_events("budget")
    assert check_url(" https://hooks.example/x ") == "https://hooks.example/x"
    for bad in ("ftp://x", "https://", "not a url", "http://" + "a" * 2000 + ".example"):
        with pytest.raises(InvalidRequest, match="url"):
            check_url(bad)
