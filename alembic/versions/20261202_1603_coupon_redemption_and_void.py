"""coupons can be redeemed and voided: the external keys that make both idempotent, and who voided why

Revision ID: 1603
Revises: 1503
Create Date: 2026-12-02 07:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '1603'
down_revision: str | None = '1503'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('coupons', sa.Column('redemption_ref', sa.String(length=64), nullable=True))
    op.add_column('coupons', sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('coupons', sa.Column('void_ref', sa.String(length=64), nullable=True))
    op.add_column('coupons', sa.Column('void_reason', sa.String(length=200), nullable=True))
    op.add_column('coupons', sa.Column('voided_by', sa.String(length=130), nullable=True))


def downgrade() -> None:
    for column in ('voided_by', 'void_reason', 'void_ref', 'voided_at', 'redemption_ref'):
        op.drop_column('coupons', column)
