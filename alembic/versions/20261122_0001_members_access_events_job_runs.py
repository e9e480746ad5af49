"""members access events job runs

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 16:32:23.702688
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The serial segment of member codes; a sequence never hands out a number twice, even under races.
    op.execute("CREATE SEQUENCE member_code_serial START 1")
    op.create_table('access_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('api_key_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('agent_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log'))
    )
    op.create_index('ix_access_log_member_id_at', 'access_log', ['member_id', 'at'], unique=False)
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('name', name=op.f('uq_api_keys_name')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_table('domain_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_events'))
    )
    op.create_index('ix_domain_events_kind_occurred_at', 'domain_events', ['kind', 'occurred_at'], unique=False)
    op.create_index(op.f('ix_domain_events_member_id'), 'domain_events', ['member_id'], unique=False)
    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    op.create_index('ix_job_runs_job_started_at', 'job_runs', ['job', 'started_at'], unique=False)
    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('wechat_openid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('wechat_unionid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('gender', sa.String(length=10), nullable=False),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('preferred_channel', sa.String(length=10), nullable=True),
    sa.Column('assigned_rep', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('tags', postgresql.ARRAY(sa.String(length=64)), server_default='{}', nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source_channel', sa.String(length=20), nullable=False),
    sa.Column('source_campaign', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_purchase_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('member_code', name=op.f('uq_members_member_code')),
    sa.UniqueConstraint('phone', name=op.f('uq_members_phone')),
    sa.UniqueConstraint('wechat_openid', name=op.f('uq_members_wechat_openid')),
    sa.UniqueConstraint('wechat_unionid', name=op.f('uq_members_wechat_unionid'))
    )
    op.create_index(op.f('ix_members_joined_at'), 'members', ['joined_at'], unique=False)
    op.create_index(op.f('ix_members_status'), 'members', ['status'], unique=False)
    op.create_table('member_channel_reachability',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('reachable', sa.Boolean(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_channel_reachability_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'channel', name=op.f('pk_member_channel_reachability'))
    )
    op.create_table('member_consent_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_consent_events_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_consent_events'))
    )
    op.create_index(op.f('ix_member_consent_events_member_id'), 'member_consent_events', ['member_id'], unique=False)
    op.create_table('member_consents',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_consents_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'channel', name=op.f('pk_member_consents'))
    )
    op.create_table('member_external_ids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('system', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_external_ids_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_external_ids')),
    sa.UniqueConstraint('system', 'external_id', name=op.f('uq_member_external_ids_system_external_id'))
    )
    op.create_index(op.f('ix_member_external_ids_member_id'), 'member_external_ids', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_member_external_ids_member_id'), table_name='member_external_ids')
    op.drop_table('member_external_ids')
    op.drop_table('member_consents')
    op.drop_index(op.f('ix_member_consent_events_member_id'), table_name='member_consent_events')
    op.drop_table('member_consent_events')
    op.drop_table('member_channel_reachability')
    op.drop_index(op.f('ix_members_status'), table_name='members')
    op.drop_index(op.f('ix_members_joined_at'), table_name='members')
    op.drop_table('members')
    op.drop_index('ix_job_runs_job_started_at', table_name='job_runs')
    op.drop_table('job_runs')
    op.drop_index(op.f('ix_domain_events_member_id'), table_name='domain_events')
    op.drop_index('ix_domain_events_kind_occurred_at', table_name='domain_events')
    op.drop_table('domain_events')
    op.drop_table('api_keys')
    op.drop_index('ix_access_log_member_id_at', table_name='access_log')
    op.drop_table('access_log')
    op.execute("DROP SEQUENCE member_code_serial")
