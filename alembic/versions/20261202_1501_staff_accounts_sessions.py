"""staff accounts and their sessions; the access log names staff readers

Revision ID: 1501
Revises: 2101
Create Date: 2026-12-02 02:28:41.292690
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '1501'
down_revision: str | None = '2101'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('staff_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('pii_access', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_failed_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_accounts')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_accounts_username'))
    )
    op.create_table('staff_sessions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id'], name=op.f('fk_staff_sessions_staff_id_staff_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions'))
    )
    op.create_index(op.f('ix_staff_sessions_staff_id'), 'staff_sessions', ['staff_id'], unique=False)
    op.add_column('access_log', sa.Column('staff_id', sa.Integer(), nullable=True))
    op.alter_column('access_log', 'api_key_name',
               existing_type=sa.VARCHAR(length=64),
               nullable=True)


def downgrade() -> None:
    # Reads by staff had no key: keep them in the log under the person's name rather than lose them.
    op.execute("UPDATE access_log SET api_key_name = left('staff:' || coalesce(agent_id, '?'), 64) "
               "WHERE api_key_name IS NULL")
    op.alter_column('access_log', 'api_key_name',
               existing_type=sa.VARCHAR(length=64),
               nullable=False)
    op.drop_column('access_log', 'staff_id')
    op.drop_index(op.f('ix_staff_sessions_staff_id'), table_name='staff_sessions')
    op.drop_table('staff_sessions')
    op.drop_table('staff_accounts')
