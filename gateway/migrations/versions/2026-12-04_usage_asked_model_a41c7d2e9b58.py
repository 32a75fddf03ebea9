"""usage events keep the model name the client sent when the key's aliases routed it elsewhere

Revision ID: a41c7d2e9b58
Revises: c20b1550eba6
Create Date: 2026-12-04 03:40:00

A nullable column: no row is rewritten. On Postgres the partitioned parent passes it to every
partition (and to the months the gateway creates later).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a41c7d2e9b58"
down_revision: str | None = "c20b1550eba6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("asked_model", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_column("asked_model")
