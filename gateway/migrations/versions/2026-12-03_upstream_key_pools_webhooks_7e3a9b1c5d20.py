"""upstream key pools (the one stored key becomes the pool's first), usage rows name their pool key, webhooks

Revision ID: 7e3a9b1c5d20
Revises: 9c4d2e7f1b35
Create Date: 2026-12-03 16:30:00

The stored key moves unchanged: it is sealed with its upstream's context, which is also a pool key's.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '7e3a9b1c5d20'
down_revision: str | None = '9c4d2e7f1b35'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tz = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'upstream_keys',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('upstream_id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('api_key_encrypted', sa.Text(), nullable=False),
        sa.Column('weight', sa.Integer(), server_default='1', nullable=False),
        sa.Column('priority', sa.Integer(), server_default='1', nullable=False),
        sa.Column('rpm_limit', sa.Integer(), nullable=True),
        sa.Column('tpm_limit', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=16), server_default='active', nullable=False),
        sa.Column('disabled_reason', sa.String(length=500), nullable=True),
        sa.Column('disabled_at', _tz, nullable=True),
        sa.Column('created_at', _tz, nullable=False),
        sa.ForeignKeyConstraint(['upstream_id'], ['upstreams.id'], name=op.f('fk_upstream_keys_upstream_id_upstreams'),
                                ondelete='CASCADE'),  # fmt: skip
        sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_keys')),
    )
    with op.batch_alter_table('upstream_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_keys_upstream_id'), ['upstream_id'], unique=False)
    bind = op.get_bind()
    upstreams = sa.table('upstreams', sa.column('id', sa.String), sa.column('api_key_encrypted', sa.Text))
    keys = sa.table(
        'upstream_keys',
        sa.column('id', sa.String), sa.column('upstream_id', sa.String), sa.column('name', sa.String),
        sa.column('api_key_encrypted', sa.Text), sa.column('weight', sa.Integer), sa.column('priority', sa.Integer),
        sa.column('state', sa.String), sa.column('created_at', _tz),
    )  # fmt: skip
    now = datetime.now(UTC)
    rows = bind.execute(sa.select(upstreams.c.id, upstreams.c.api_key_encrypted)).all()
    moved = [
        {'id': uuid.uuid4().hex, 'upstream_id': uid, 'name': 'default', 'api_key_encrypted': secret, 'weight': 1,
         'priority': 1, 'state': 'active', 'created_at': now}  # fmt: skip
        for uid, secret in rows
        if secret
    ]
    if moved:
        bind.execute(keys.insert(), moved)
    with op.batch_alter_table('upstreams', schema=None) as batch_op:
        batch_op.drop_column('api_key_encrypted')

    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upstream_key_id', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_usage_events_upstream_key_time', ['upstream_key_id', 'created_at'], unique=False)

    op.create_table(
        'webhooks',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('tenant_id', sa.String(length=32), nullable=True),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('events', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.Column('secret_encrypted', sa.Text(), nullable=False),
        sa.Column('created_at', _tz, nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_webhooks_tenant_id_tenants'),
                                ondelete='CASCADE'),  # fmt: skip
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks')),
    )
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhooks_tenant_id'), ['tenant_id'], unique=False)
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('webhook_id', sa.String(length=32), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('dedupe', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', _tz, nullable=False),
        sa.Column('delivered_at', _tz, nullable=True),
        sa.Column('failed_at', _tz, nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('created_at', _tz, nullable=False),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_webhook_deliveries_webhook_id_webhooks'),
                                ondelete='CASCADE'),  # fmt: skip
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('webhook_id', 'dedupe', name=op.f('uq_webhook_deliveries_webhook_id')),
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['delivered_at', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_webhook_id'), ['webhook_id'], unique=False)


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_table('webhooks')
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_events_upstream_key_time')
        batch_op.drop_column('upstream_key_id')
    with op.batch_alter_table('upstreams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_key_encrypted', sa.Text(), nullable=True))
    bind = op.get_bind()
    # The pool's first key (best priority, then oldest) goes back to its upstream; the others are lost.
    first = sa.text(
        "SELECT k.api_key_encrypted FROM upstream_keys k WHERE k.upstream_id = upstreams.id "
        "ORDER BY k.priority, k.created_at LIMIT 1"
    )
    bind.execute(sa.text(f"UPDATE upstreams SET api_key_encrypted = ({first})"))
    op.drop_table('upstream_keys')
