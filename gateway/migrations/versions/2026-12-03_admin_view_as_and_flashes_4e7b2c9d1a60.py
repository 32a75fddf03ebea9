"""admin sessions may view another tenant (platform admins); one-time flashes for the page after a form

Revision ID: 4e7b2c9d1a60
Revises: 8d2a6f4c1e93
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4e7b2c9d1a60'
down_revision: str | None = '8d2a6f4c1e93'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('viewing_tenant_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_admin_sessions_viewing_tenant_id_tenants'), 'tenants', ['viewing_tenant_id'], ['id'],
            ondelete='SET NULL',
        )

    op.create_table('admin_flashes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('sealed', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['admin_sessions.id'], name=op.f('fk_admin_flashes_session_id_admin_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_flashes'))
    )
    with op.batch_alter_table('admin_flashes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_flashes_session_id'), ['session_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('admin_flashes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_flashes_session_id'))
    op.drop_table('admin_flashes')
    with op.batch_alter_table('admin_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_admin_sessions_viewing_tenant_id_tenants'), type_='foreignkey')
        batch_op.drop_column('viewing_tenant_id')
