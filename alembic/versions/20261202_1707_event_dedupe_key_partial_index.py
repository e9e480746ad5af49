"""domain_events' unique index on dedupe_key holds only the events that have a key

Revision ID: 1707
Revises: 1706
Create Date: 2026-12-02 13:00:00

Why (issue #17): only events a job derives from state (``points.expiring_soon``, ``journey.converted``) carry a
``dedupe_key``; every other event leaves it NULL, and a full unique index still took one entry per event: two
per order (``points.earned``, ``order.recorded``), one per refund and redemption, each a btree descent, a WAL
record and a share of the index's page splits, for keys that can never collide (NULLs are distinct). Partial,
the index answers the same ``ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL`` (the writers name the
predicate, which a full index also satisfies, so the code runs on either side of this migration) and the same
lookups by key. Measured on the benchmark's database: see docs/hot-paths.md (issue #17).

Built without CONCURRENTLY, inside the migration's transaction: writes to domain_events wait while the new
index is built (a scan of the table; only the rows with a key enter it).
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '1707'
down_revision: str | None = '1706'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_domain_events_dedupe_key', table_name='domain_events')
    op.create_index('ix_domain_events_dedupe_key', 'domain_events', ['dedupe_key'], unique=True,
                    postgresql_where=sa.text('dedupe_key IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_domain_events_dedupe_key', table_name='domain_events')
    op.create_index('ix_domain_events_dedupe_key', 'domain_events', ['dedupe_key'], unique=True)
