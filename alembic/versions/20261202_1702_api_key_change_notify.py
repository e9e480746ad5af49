"""NOTIFY loyalty_credentials on every change to api_keys (the hot routes' key cache, api/hot.py)

Each API worker keeps the keys it has checked and LISTENs on ``loyalty_credentials``; a notification empties
its cache, so a revoked key is refused by the next request instead of when a cache entry times out. A
statement-level trigger: one notification per statement whatever the number of rows, sent at commit (a
rolled-back change notifies nobody).

Revision ID: 1702
Revises: 1802
Create Date: 2026-12-02 06:30:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1702'
down_revision: str | None = '1802'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION loyalty_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('loyalty_credentials', TG_TABLE_NAME);
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER api_keys_notify_credentials
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
        FOR EACH STATEMENT EXECUTE FUNCTION loyalty_notify_credentials()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER api_keys_notify_credentials ON api_keys")
    op.execute("DROP FUNCTION loyalty_notify_credentials()")
