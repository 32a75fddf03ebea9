"""A key's Claude Code profile maps the model ids Claude Code really sends, by family, in one step."""

from __future__ import annotations

import httpx
import pytest

from gateway.domain import Principal, claude_code_aliases
from gateway.routing import _apply_alias  # the resolution step under test

# Model ids Claude Code sends (shared/reference/claude-code-wire.md §0.4) and older family ids.
SENT = {
    "claude-opus-4-8": "opus",
    "claude-opus-4-1-20250805": "opus",
    "claude-sonnet-5": "sonnet",
    "claude-sonnet-4-5-20250929": "sonnet",
    "claude-3-7-sonnet-20250219": "sonnet",
    "claude-haiku-4-5-20251001": "haiku",
    "claude-3-5-haiku-20241022": "haiku",
    "opus": "opus",
    "haiku": "haiku",
}


@pytest.mark.parametrize(("sent", "family"), sorted(SENT.items()))
def test_each_claude_code_name_maps_to_its_family(sent, family):
    profile = {"opus": "big-model", "sonnet": "mid-model", "haiku": "small-model"}
    principal = Principal(key_id="k", tenant_id="t", name="", prefix="sk-x", aliases=claude_code_aliases(profile))
    assert _apply_alias(principal, sent) == profile[family]


def test_other_names_pass_through_and_explicit_aliases_win():
    explicit = (("claude-opus-4-8", "pinned"),)
    principal = Principal(
        key_id="k",
        tenant_id="t",
        name="",
        prefix="sk-x",
        aliases=explicit + claude_code_aliases({"opus": "big-model"}),
    )
    assert _apply_alias(principal, "claude-opus-4-8") == "pinned"
    assert _apply_alias(principal, "claude-opus-5") == "big-model"
    assert _apply_alias(principal, "deepseek-chat") == "deepseek-chat"


def test_profile_key_routes_through_both_doors(stack, world):
    key = stack.seed.key(world.tenant, claude_code_profile={"opus": "my-claude", "haiku": "my-gpt"}).secret
    r = httpx.post(
        world.url + "/v1/messages",
        headers={"x-api-key": key},
        json={"model": "claude-opus-4-8", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]},
    )
    assert r.status_code == 200 and r.json()["model"] == "my-claude"
    assert world.fake.requests[-1].json["model"] == "claude-upstream-id"
    r = httpx.post(
        world.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "claude-haiku-4-5-20251001", "messages": [{"role": "user", "content": "b"}]},
    )
    assert r.status_code == 200 and r.json()["model"] == "my-gpt"
    assert world.fake.requests[-1].json["model"] == "gpt-upstream-id"
    r = httpx.post(
        world.url + "/v1/messages",
        headers={"x-api-key": key},
        json={"model": "claude-sonnet-5", "max_tokens": 5, "messages": [{"role": "user", "content": "c"}]},
    )
    assert r.status_code == 404  # no sonnet in this profile, and no such model


def test_bad_profile_is_refused(stack, world):
    with pytest.raises(Exception, match="unknown family 'gpt'"):
        stack.seed.key(world.tenant, claude_code_profile={"gpt": "my-gpt"})
