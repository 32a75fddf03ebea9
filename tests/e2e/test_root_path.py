"""RELAY_ROOT_PATH: everything served under a prefix, as seed platforms publish `http://host:port/claude_api`."""

from __future__ import annotations

from dataclasses import replace

import anthropic
import httpx
import openai
import pytest
from support import GatewayServer, Seeder

from gateway.testing.fake_upstream import Reply


@pytest.fixture
def prefixed(stack):
    server = GatewayServer(replace(stack.settings, root_path="/claude_api")).start()
    yield server
    server.stop()


def test_both_doors_under_the_prefix(prefixed, fake):
    seed = Seeder(prefixed.settings)
    tenant = seed.tenant()
    up_a = seed.upstream(tenant, base_url=fake.url, dialect="anthropic")
    up_o = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai")
    seed.model(tenant, up_a, "pre-claude")
    seed.model(tenant, up_o, "pre-gpt")
    key = seed.key(tenant).secret
    assert prefixed.url.endswith("/claude_api")

    fake.enqueue(Reply(text="prefixed anthropic"), Reply(text="prefixed openai"))
    msg = anthropic.Anthropic(base_url=prefixed.url, api_key=key, max_retries=0).messages.create(
        model="pre-claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].text == "prefixed anthropic"
    chat = openai.OpenAI(base_url=prefixed.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
        model="pre-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "prefixed openai"
    assert httpx.head(prefixed.url).status_code == 200
    # Outside the prefix nothing is served, and the 404 is still a JSON error.
    r = httpx.post(prefixed.url.removesuffix("/claude_api") + "/v1/messages", headers={"x-api-key": key}, json={})
    assert r.status_code == 404 and r.json()["type"] == "error"
