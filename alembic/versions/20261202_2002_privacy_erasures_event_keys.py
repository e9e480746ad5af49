"""privacy erasure tombstones; domain events with an optional idempotency key

Revision ID: 2002
Revises: 1702
Create Date: 2026-12-02 06:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '2002'
down_revision: str | None = '1702'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('privacy_erasures',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_privacy_erasures_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_privacy_erasures'))
    )
    op.add_column('domain_events', sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=120),
                                             nullable=True))
    op.create_index(op.f('ix_domain_events_dedupe_key'), 'domain_events', ['dedupe_key'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_domain_events_dedupe_key'), table_name='domain_events')
    op.drop_column('domain_events', 'dedupe_key')
    op.drop_table('privacy_erasures')
