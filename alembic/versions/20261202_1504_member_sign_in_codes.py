"""member sign-in by phone + SMS code: the codes sent (digests only), for the limits and the check

Revision ID: 1504
Revises: 1603
Create Date: 2026-12-02 07:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '1504'
down_revision: str | None = '1603'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_sign_in_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_sign_in_codes")),
    )
    op.create_index("ix_member_sign_in_codes_phone_sent_at", "member_sign_in_codes", ["phone", "sent_at"])
    op.create_index("ix_member_sign_in_codes_client_sent_at", "member_sign_in_codes", ["client", "sent_at"])


def downgrade() -> None:
    op.drop_table("member_sign_in_codes")
