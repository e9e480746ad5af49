"""lifecycle stages and churn risks

Revision ID: 1802
Revises: 1801
Create Date: 2026-12-02 03:20:32.333245
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '1802'
down_revision: str | None = '1801'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('churn_risks',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('cohort', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('risk', sa.Float(), nullable=False),
    sa.Column('at_risk', sa.Boolean(), nullable=False),
    sa.Column('factors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_churn_risks_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_churn_risks'))
    )
    op.create_index('ix_churn_risks_at_risk', 'churn_risks', ['at_risk', 'risk'], unique=False)
    op.create_table('member_lifecycle',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_lifecycle_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_lifecycle'))
    )
    op.create_index('ix_member_lifecycle_stage', 'member_lifecycle', ['stage'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_member_lifecycle_stage', table_name='member_lifecycle')
    op.drop_table('member_lifecycle')
    op.drop_index('ix_churn_risks_at_risk', table_name='churn_risks')
    op.drop_table('churn_risks')
