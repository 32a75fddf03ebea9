"""usage events carry their attempts and the model that answered (one request, one row)

Revision ID: 5b1f0c9e7d24
Revises: 3c9e41d7a2b8
Create Date: 2026-12-03 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5b1f0c9e7d24'
down_revision: str | None = '3c9e41d7a2b8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.SmallInteger(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('served_model', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.drop_column('served_model')
        batch_op.drop_column('attempts')
