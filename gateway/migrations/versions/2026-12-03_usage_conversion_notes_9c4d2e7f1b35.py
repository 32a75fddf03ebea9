"""usage events keep the conversion notes of their request (what translation dropped or changed)

Revision ID: 9c4d2e7f1b35
Revises: 4e7b2c9d1a60
Create Date: 2026-12-03 14:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9c4d2e7f1b35'
down_revision: str | None = '4e7b2c9d1a60'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('conversion_notes', sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.drop_column('conversion_notes')
