"""End-to-end fixtures: a tenant with an upstream and a model per dialect on the running gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from support import (
    REDIS_URL,
    base_settings,
    prepare_database,
    scratch_postgres,
)

from gateway.testing.fake_upstream import FakeUpstream


@dataclass
class World:
    """A fresh tenant whose key reaches an OpenAI-dialect and an Anthropic-dialect model on the fake."""

    url: str
    key: str
    key_id: str
    tenant: Any
    fake: FakeUpstream
    openai_model: str = "my-gpt"
    anthropic_model: str = "my-claude"


@pytest.fixture
def world(stack: Any, fake: FakeUpstream) -> World:
    seed = stack.seed
    tenant = seed.tenant()
    up_o = seed.upstream(tenant, base_url=fake.url + "/v1", dialect="openai", api_key="up-secret-openai")
    up_a = seed.upstream(tenant, base_url=fake.url, dialect="anthropic", api_key="up-secret-anthropic")
    seed.model(tenant, up_o, "my-gpt", upstream_model="gpt-upstream-id", input_price=1.0, output_price=2.0)
    seed.model(tenant, up_a, "my-claude", upstream_model="claude-upstream-id", input_price=3.0, output_price=15.0)
    new = seed.key(tenant)
    return World(url=stack.url, key=new.secret, key_id=new.row.id, tenant=tenant, fake=fake)


@pytest.fixture(scope="module")
def pg_settings() -> Any:
    """Settings of a Postgres database of the module's own, with the shared Redis: the production backend,
    for tests that only make sense there (several gateways, Redis outages)."""
    with scratch_postgres() as url:
        settings = base_settings(url, REDIS_URL)
        prepare_database(settings)
        yield settings
