"""call lists leads outcomes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 17:25:29.464095
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('call_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('product', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('audience', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('weights', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('interest_days', sa.Integer(), nullable=False),
    sa.Column('recall_hours', sa.Integer(), nullable=False),
    sa.Column('agent_capacity', sa.Integer(), nullable=False),
    sa.Column('exclusions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('extracted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_lists'))
    )
    op.create_table('leads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_list_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('band', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('agent_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recalls', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('worked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_list_id'], ['call_lists.id'], name=op.f('fk_leads_call_list_id_call_lists')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_leads_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads')),
    sa.UniqueConstraint('call_list_id', 'member_id', name=op.f('uq_leads_call_list_id_member_id'))
    )
    op.create_index('ix_leads_pool', 'leads', ['call_list_id', 'state', 'priority'], unique=False)
    op.create_table('call_outcomes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('agent_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('callback_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_call_outcomes_lead_id_leads')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_call_outcomes_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_outcomes'))
    )
    op.create_index(op.f('ix_call_outcomes_member_id'), 'call_outcomes', ['member_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_call_outcomes_member_id'), table_name='call_outcomes')
    op.drop_table('call_outcomes')
    op.drop_index('ix_leads_pool', table_name='leads')
    op.drop_table('leads')
    op.drop_table('call_lists')
