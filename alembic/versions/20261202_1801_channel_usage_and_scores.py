"""channel usage facts, preference scores, score models

Revision ID: 1801
Revises: 1602
Create Date: 2026-12-02 02:29:45.820282
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '1801'
down_revision: str | None = '1602'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('score_models',
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('entropy_weights', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('features', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('coefficients', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('scaling', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_score_models'))
    )
    op.create_table('score_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('truth', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_reports'))
    )
    op.create_table('channel_scores',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('basis', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('baseline', sa.Boolean(), nullable=False),
    sa.Column('model_version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('scored_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_channel_scores_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'channel', name=op.f('pk_channel_scores'))
    )
    op.create_index('ix_channel_scores_channel_score', 'channel_scores', ['channel', 'score'], unique=False)
    op.create_table('channel_usage_facts',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('transactions', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('transactions >= 0', name=op.f('ck_channel_usage_facts_transactions_non_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_channel_usage_facts_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'channel', 'day', 'source', name=op.f('pk_channel_usage_facts'))
    )
    op.create_index('ix_channel_usage_facts_day', 'channel_usage_facts', ['day'], unique=False)
    op.create_table('demo_channel_truth',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('preferred', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('acceptance', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('activity', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_demo_channel_truth_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_demo_channel_truth'))
    )


def downgrade() -> None:
    op.drop_table('demo_channel_truth')
    op.drop_index('ix_channel_usage_facts_day', table_name='channel_usage_facts')
    op.drop_table('channel_usage_facts')
    op.drop_index('ix_channel_scores_channel_score', table_name='channel_scores')
    op.drop_table('channel_scores')
    op.drop_table('score_reports')
    op.drop_table('score_models')
