"""user email unique per tenant (no cross-tenant disclosure)

Revision ID: 3c9e41d7a2b8
Revises: f7be6c0aa104
Create Date: 2026-12-03 10:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '3c9e41d7a2b8'
down_revision: str | None = 'f7be6c0aa104'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_email'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_users_tenant_id'), ['tenant_id', 'email'])
        batch_op.create_index(batch_op.f('ix_users_email'), ['email'], unique=False)


def downgrade() -> None:
    # Globally unique again: an address kept by several tenants stays with its first account; the others
    # get a suffixed address (lossy, as any way back to a stricter rule must be).
    op.execute(
        "UPDATE users SET email = substr(email, 1, 280) || '#' || id "
        "WHERE id NOT IN (SELECT MIN(id) FROM users GROUP BY email)"
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_email'))
        batch_op.drop_constraint(batch_op.f('uq_users_tenant_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_users_email'), ['email'])
