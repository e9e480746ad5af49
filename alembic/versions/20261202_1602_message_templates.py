"""message template catalogue: versioned texts per channel with purpose and declared variables

Revision ID: 1602
Revises: 1502
Create Date: 2026-12-02 03:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '1602'
down_revision: str | None = '1502'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('message_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('variables', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=130), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_templates')),
    sa.UniqueConstraint('key', 'channel', 'version', name=op.f('uq_message_templates_key_channel_version'))
    )
    op.create_index(op.f('ix_message_templates_key'), 'message_templates', ['key'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_message_templates_key'), table_name='message_templates')
    op.drop_table('message_templates')
