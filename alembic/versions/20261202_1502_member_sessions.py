"""member sessions: a member's login with its rotating refresh token (stored hashed)

Revision ID: 1502
Revises: 1701
Create Date: 2026-12-02 03:56:28.024260
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '1502'
down_revision: str | None = '1701'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('member_sessions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('proof', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('refresh_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('previous_refresh_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_sessions'))
    )
    op.create_index(op.f('ix_member_sessions_member_id'), 'member_sessions', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_member_sessions_member_id'), table_name='member_sessions')
    op.drop_table('member_sessions')
