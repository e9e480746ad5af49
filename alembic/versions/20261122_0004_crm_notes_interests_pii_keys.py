"""crm notes interests pii keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:17:29.770102
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agent_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fields', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_agent_notes_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_notes'))
    )
    op.create_index('ix_agent_notes_member_id_id', 'agent_notes', ['member_id', 'id'], unique=False)
    op.create_table('interest_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('product', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_interest_events_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interest_events'))
    )
    op.create_index('ix_interest_events_member_id_at', 'interest_events', ['member_id', 'at'], unique=False)
    op.create_index('ix_interest_events_product_at', 'interest_events', ['product', 'at'], unique=False)
    op.add_column('api_keys', sa.Column('pii_access', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    op.drop_column('api_keys', 'pii_access')
    op.drop_index('ix_interest_events_product_at', table_name='interest_events')
    op.drop_index('ix_interest_events_member_id_at', table_name='interest_events')
    op.drop_table('interest_events')
    op.drop_index('ix_agent_notes_member_id_id', table_name='agent_notes')
    op.drop_table('agent_notes')
