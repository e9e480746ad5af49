"""the account team, visits and account complaints point at staff accounts (foreign keys)

Revision ID: 2102
Revises: 1803
Create Date: 2026-12-02 07:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '2102'
down_revision: str | None = '1803'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): every staff id the organisations hold. Written before the staff table was on main, they had
# no key; an id naming no account would make this migration fail loudly, which is what we want to know.
STAFF_COLUMNS = [('organisations', 'manager_staff_id'), ('account_team', 'staff_id'),
                 ('account_visits', 'staff_id'), ('account_complaints', 'owner_staff_id')]


def upgrade() -> None:
    for table, column in STAFF_COLUMNS:
        op.create_foreign_key(op.f(f'fk_{table}_{column}_staff_accounts'), table, 'staff_accounts', [column], ['id'])


def downgrade() -> None:
    for table, column in reversed(STAFF_COLUMNS):
        op.drop_constraint(op.f(f'fk_{table}_{column}_staff_accounts'), table, type_='foreignkey')
