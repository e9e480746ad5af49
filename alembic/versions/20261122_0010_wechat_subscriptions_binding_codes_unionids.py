"""wechat subscription grants, sms binding codes, unionid checks

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 20:59:36.702504
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wechat_subscription_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('template_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('grant_key', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_subscription_grants')),
    sa.UniqueConstraint('grant_key', name=op.f('uq_wechat_subscription_grants_grant_key')),
    sa.UniqueConstraint('used_by', name=op.f('uq_wechat_subscription_grants_used_by'))
    )
    op.create_index('ix_wechat_subscription_grants_open', 'wechat_subscription_grants', ['openid', 'template_id', 'granted_at'], unique=False, postgresql_where=sa.text('used_at IS NULL AND revoked_at IS NULL'))
    op.add_column('wechat_followers', sa.Column('unionid_checked_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('wechat_oauth_states', sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
    op.add_column('wechat_oauth_states', sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.add_column('wechat_oauth_states', sa.Column('code_sent_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('wechat_oauth_states', sa.Column('codes_sent', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('wechat_oauth_states', sa.Column('code_attempts', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('wechat_oauth_states', 'code_attempts')
    op.drop_column('wechat_oauth_states', 'codes_sent')
    op.drop_column('wechat_oauth_states', 'code_sent_at')
    op.drop_column('wechat_oauth_states', 'code_hash')
    op.drop_column('wechat_oauth_states', 'phone')
    op.drop_column('wechat_followers', 'unionid_checked_at')
    op.drop_index('ix_wechat_subscription_grants_open', table_name='wechat_subscription_grants', postgresql_where=sa.text('used_at IS NULL AND revoked_at IS NULL'))
    op.drop_table('wechat_subscription_grants')
