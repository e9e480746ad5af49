"""contact gate touches complaints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:10:59.359011
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('complaints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=130), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_complaints_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_complaints'))
    )
    op.create_index('ix_complaints_member_id_opened_at', 'complaints', ['member_id', 'opened_at'], unique=False)
    op.create_table('touches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('template', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('variables', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('reasons', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('send_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_allowed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_ref', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('delivery_status', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_touches_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_touches')),
    sa.UniqueConstraint('source', 'idempotency_key', name=op.f('uq_touches_source_idempotency_key'))
    )
    op.create_index('ix_touches_due', 'touches', ['send_at'], unique=False, postgresql_where=sa.text("status IN ('queued', 'sending')"))
    op.create_index('ix_touches_member_id_send_at', 'touches', ['member_id', 'send_at'], unique=False)
    op.create_index('ix_touches_provider_ref', 'touches', ['channel', 'provider_ref'], unique=False)
    op.create_table('call_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('touch_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('template', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_call_tasks_member_id_members')),
    sa.ForeignKeyConstraint(['touch_id'], ['touches.id'], name=op.f('fk_call_tasks_touch_id_touches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_tasks')),
    sa.UniqueConstraint('touch_id', name=op.f('uq_call_tasks_touch_id'))
    )
    op.create_index(op.f('ix_call_tasks_member_id'), 'call_tasks', ['member_id'], unique=False)
    op.create_table('delivery_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('touch_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('provider_ref', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['touch_id'], ['touches.id'], name=op.f('fk_delivery_attempts_touch_id_touches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    op.create_index(op.f('ix_delivery_attempts_touch_id'), 'delivery_attempts', ['touch_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_delivery_attempts_touch_id'), table_name='delivery_attempts')
    op.drop_table('delivery_attempts')
    op.drop_index(op.f('ix_call_tasks_member_id'), table_name='call_tasks')
    op.drop_table('call_tasks')
    op.drop_index('ix_touches_provider_ref', table_name='touches')
    op.drop_index('ix_touches_member_id_send_at', table_name='touches')
    op.drop_index('ix_touches_due', table_name='touches', postgresql_where=sa.text("status IN ('queued', 'sending')"))
    op.drop_table('touches')
    op.drop_index('ix_complaints_member_id_opened_at', table_name='complaints')
    op.drop_table('complaints')
