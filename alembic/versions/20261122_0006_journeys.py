"""journeys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 17:29:29.420239
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('journeys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journeys')),
    sa.UniqueConstraint('key', name=op.f('uq_journeys_key'))
    )
    op.create_table('journey_enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('journey_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('trigger_ref', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('control', sa.Boolean(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], name=op.f('fk_journey_enrollments_journey_id_journeys')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_journey_enrollments_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_enrollments')),
    sa.UniqueConstraint('journey_id', 'member_id', 'trigger_ref', name=op.f('uq_journey_enrollments_journey_id_member_id_trigger_ref'))
    )
    op.create_index('ix_journey_enrollments_due', 'journey_enrollments', ['next_run_at'], unique=False, postgresql_where=sa.text("state = 'active'"))
    op.create_index(op.f('ix_journey_enrollments_member_id'), 'journey_enrollments', ['member_id'], unique=False)
    op.create_table('journey_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('journey_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('steps', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('control_share', sa.Float(), nullable=False),
    sa.Column('goal', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], name=op.f('fk_journey_versions_journey_id_journeys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_versions')),
    sa.UniqueConstraint('journey_id', 'version', name=op.f('uq_journey_versions_journey_id_version'))
    )
    op.create_table('journey_step_executions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reasons', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('touch_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['journey_enrollments.id'], name=op.f('fk_journey_step_executions_enrollment_id_journey_enrollments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journey_step_executions')),
    sa.UniqueConstraint('enrollment_id', 'step_index', name=op.f('uq_journey_step_executions_enrollment_id_step_index'))
    )


def downgrade() -> None:
    op.drop_table('journey_step_executions')
    op.drop_table('journey_versions')
    op.drop_index(op.f('ix_journey_enrollments_member_id'), table_name='journey_enrollments')
    op.drop_index('ix_journey_enrollments_due', table_name='journey_enrollments', postgresql_where=sa.text("state = 'active'"))
    op.drop_table('journey_enrollments')
    op.drop_table('journeys')
