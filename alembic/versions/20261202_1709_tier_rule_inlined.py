"""the SQL form of the tier rule is one expression, so PostgreSQL inlines it into the order function

Revision ID: 1709
Revises: 1708
Create Date: 2026-12-02 13:30:00

Why (issue #17): ``loyalty_tier_for`` (1700) selected from ``unnest(tiers, thresholds) WITH ORDINALITY`` with an
``ORDER BY … LIMIT 1``; a SQL function with a FROM clause is not inlined, so every order ran it as a function of
its own (an executor, a sort): about 3% of the order's backend CPU in a profile (perf, 3,500 orders on one
connection). ``width_bucket(spend, thresholds)`` is the number of thresholds at or below the spend when they
rise, which ``Ladder.from_yuan`` guarantees (``tiers/rules.py``: from 0, never falling): the same tier, NULL
below the first threshold as before, ties to the higher tier as before. An expression without FROM is inlined
by the planner into the calling statement. ``tests/domain/test_order_statement.py`` compares it with
``Ladder.tier_for`` on generated spends and ladders with ties.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1709'
down_revision: str | None = '1708'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIER_FOR = """
CREATE OR REPLACE FUNCTION loyalty_tier_for(spend_fen bigint, tiers text[], thresholds_fen bigint[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    -- the highest tier whose threshold the spend reaches (tiers/rules.py::Ladder.tier_for): the thresholds rise,
    -- so that tier's position is the count of thresholds at or below the spend
    SELECT tiers[width_bucket(spend_fen, thresholds_fen)]
$fn$
"""


def upgrade() -> None:
    op.get_bind().exec_driver_sql(TIER_FOR)


def downgrade() -> None:
    # Alembic has loaded every revision already: 1700's function body is read from its module.
    script = op.get_context().script
    earlier = script.get_revision("1700") if script is not None else None
    assert earlier is not None
    op.get_bind().exec_driver_sql(earlier.module.TIER_FOR.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
