"""call lists name their strategy (weighted, or churn: the at-risk list by risk)

Revision ID: 1803
Revises: 2002
Create Date: 2026-12-02 06:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '1803'
down_revision: str | None = '2002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing lists keep what they did: the weighted score.
    op.add_column('call_lists', sa.Column('strategy', sqlmodel.sql.sqltypes.AutoString(length=10),
                                          server_default='weighted', nullable=False))


def downgrade() -> None:
    op.drop_column('call_lists', 'strategy')
