"""wechat followers callbacks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 17:34:37.640741
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wechat_processed_callbacks',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_wechat_processed_callbacks'))
    )
    op.create_table('wechat_followers',
    sa.Column('openid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('subscribed', sa.Boolean(), nullable=False),
    sa.Column('qr_scene', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('subscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_interaction_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_interaction_kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_wechat_followers_member_id_members')),
    sa.PrimaryKeyConstraint('openid', name=op.f('pk_wechat_followers'))
    )
    op.create_index(op.f('ix_wechat_followers_member_id'), 'wechat_followers', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_wechat_followers_member_id'), table_name='wechat_followers')
    op.drop_table('wechat_followers')
    op.drop_table('wechat_processed_callbacks')
