"""conversation turns

``conversation_turns`` holds what clients ask Relay to keep (Responses ``previous_response_id`` chains,
Anthropic message ``thread``s): one row per stored turn, the sealed full transcript up to it
(``gateway.conversations``).

Revision ID: f7be6c0aa104
Revises: a5d4a66f0c13
Create Date: 2026-12-03 06:50:14.071872
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = 'f7be6c0aa104'
down_revision: str | None = 'a5d4a66f0c13'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('conversation_turns',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('successor', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_turns'))
    )
    with op.batch_alter_table('conversation_turns', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_turns_expires', ['expires_at'], unique=False)
        batch_op.create_index('ix_conversation_turns_tenant_expires', ['tenant_id', 'expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('conversation_turns', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_turns_tenant_expires')
        batch_op.drop_index('ix_conversation_turns_expires')

    op.drop_table('conversation_turns')
