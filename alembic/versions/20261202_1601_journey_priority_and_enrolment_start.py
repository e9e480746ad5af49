"""journeys: priority (one non-care journey per member at a time) and enrolls_since (no back-enrolment)

Revision ID: 1601
Revises: 0010
Create Date: 2026-12-02 03:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '1601'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('journeys', sa.Column('priority', sa.Integer(), server_default='0', nullable=False))
    op.add_column('journeys', sa.Column('enrolls_since', sa.DateTime(timezone=True), nullable=True))
    # The built-in welcome outranks reactivation: a member is never in both at once.
    op.execute("UPDATE journeys SET priority = 20 WHERE key = 'welcome'")
    op.execute("UPDATE journeys SET priority = 10 WHERE key = 'reactivation'")
    # Journeys an operator created: they enrol from their creation on, as the first release promised.
    op.execute("UPDATE journeys SET enrolls_since = created_at WHERE key NOT IN ('welcome', 'reactivation', 'care')")


def downgrade() -> None:
    op.drop_column('journeys', 'enrolls_since')
    op.drop_column('journeys', 'priority')
