"""tenant budgets

Revision ID: 7734a677e60d
Revises: bb50892872a3
Create Date: 2026-11-29 14:43:26.143359
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '7734a677e60d'
down_revision: str | None = 'bb50892872a3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_micro_usd', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('budget_period', sa.String(length=10), nullable=True))

    


def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('budget_period')
        batch_op.drop_column('budget_micro_usd')
