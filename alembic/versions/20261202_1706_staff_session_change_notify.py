"""NOTIFY loyalty_credentials on every change to staff_sessions and staff_accounts (the hot routes' session cache)

Migration 1702's channel and function, on two more tables: each API worker keeps the staff sessions it has
read (by session id) beside its API keys, and a notification naming either table empties the session cache, so
a logout, a revoked session or a disabled account is refused by the next request. Statement-level, sent at
commit, like the keys' trigger.

Revision ID: 1706
Revises: 1704
Create Date: 2026-12-02 10:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1706'
down_revision: str | None = '1704'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("staff_sessions", "staff_accounts")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"""
            CREATE TRIGGER {table}_notify_credentials
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION loyalty_notify_credentials()""")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_notify_credentials ON {table}")
