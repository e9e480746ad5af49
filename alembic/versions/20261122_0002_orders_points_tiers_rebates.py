"""orders points tiers rebates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:03:46.413869
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rebate_programs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('brackets', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('coupon_valid_days', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rebate_programs')),
    sa.UniqueConstraint('key', name=op.f('uq_rebate_programs_key'))
    )
    op.create_table('coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('value_fen', sa.BigInteger(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_coupons_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code')),
    sa.UniqueConstraint('source', 'source_ref', name=op.f('uq_coupons_source_source_ref'))
    )
    op.create_index(op.f('ix_coupons_member_id'), 'coupons', ['member_id'], unique=False)
    op.create_table('member_tier_status',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('below_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_tier_status_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_tier_status'))
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('refunded_fen', sa.BigInteger(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('items', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tier_at_order', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('points_earned', sa.Integer(), nullable=False),
    sa.Column('points_reversed', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_orders_amount_positive')),
    sa.CheckConstraint('refunded_fen >= 0 AND refunded_fen <= amount_fen', name=op.f('ck_orders_refund_within_amount')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_orders_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('order_id', name=op.f('uq_orders_order_id'))
    )
    op.create_index('ix_orders_member_id_occurred_at', 'orders', ['member_id', 'occurred_at'], unique=False)
    op.create_table('points_accounts',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('available', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('debt', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_accounts_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_points_accounts'))
    )
    op.create_table('points_ledger',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('pending_delta', sa.Integer(), nullable=False),
    sa.Column('available_delta', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=130), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_ledger_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_ledger')),
    sa.UniqueConstraint('source', 'source_ref', 'kind', name=op.f('uq_points_ledger_source_source_ref_kind'))
    )
    op.create_index('ix_points_ledger_member_id_id', 'points_ledger', ['member_id', 'id'], unique=False)
    op.create_table('points_lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('remaining >= 0 AND remaining <= amount', name=op.f('ck_points_lots_remaining_within_amount')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_lots_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_lots'))
    )
    op.create_index('ix_points_lots_available_expires_at', 'points_lots', ['expires_at'], unique=False, postgresql_where=sa.text("state = 'available' AND remaining > 0"))
    op.create_index('ix_points_lots_member_id_state_expires_at', 'points_lots', ['member_id', 'state', 'expires_at'], unique=False)
    op.create_index('ix_points_lots_pending_available_at', 'points_lots', ['available_at'], unique=False, postgresql_where=sa.text("state = 'pending'"))
    op.create_table('points_redemptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('redemption_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('allocations', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_redemptions_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_redemptions')),
    sa.UniqueConstraint('redemption_id', name=op.f('uq_points_redemptions_redemption_id'))
    )
    op.create_index(op.f('ix_points_redemptions_member_id'), 'points_redemptions', ['member_id'], unique=False)
    op.create_table('rebate_settlements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('spend_fen', sa.BigInteger(), nullable=False),
    sa.Column('rate_bp', sa.Integer(), nullable=False),
    sa.Column('rebate_fen', sa.BigInteger(), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_rebate_settlements_member_id_members')),
    sa.ForeignKeyConstraint(['program_id'], ['rebate_programs.id'], name=op.f('fk_rebate_settlements_program_id_rebate_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rebate_settlements')),
    sa.UniqueConstraint('program_id', 'member_id', 'period_start', name=op.f('uq_rebate_settlements_program_id_member_id_period_start'))
    )
    op.create_index(op.f('ix_rebate_settlements_member_id'), 'rebate_settlements', ['member_id'], unique=False)
    op.create_table('tier_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('from_tier', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('to_tier', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('cause', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('spend_fen', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_tier_events_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_events'))
    )
    op.create_index('ix_tier_events_member_id_at', 'tier_events', ['member_id', 'at'], unique=False)
    op.create_table('order_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('order_pk', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('points_reversed', sa.Integer(), nullable=False),
    sa.Column('payload_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_order_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['order_pk'], ['orders.id'], name=op.f('fk_order_refunds_order_pk_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_refunds')),
    sa.UniqueConstraint('refund_id', name=op.f('uq_order_refunds_refund_id'))
    )
    op.create_index(op.f('ix_order_refunds_order_pk'), 'order_refunds', ['order_pk'], unique=False)
    # The default program of DOMAIN.md: quarterly spend >= 1,000 yuan -> 3%, >= 5,000 yuan -> 5%.
    op.execute("""INSERT INTO rebate_programs (key, name, period, brackets, coupon_valid_days, active)
                  VALUES ('quarterly', 'Quarterly spend rebate', 'quarter', '[[100000, 300], [500000, 500]]', 90, true)""")


def downgrade() -> None:
    op.drop_index(op.f('ix_order_refunds_order_pk'), table_name='order_refunds')
    op.drop_table('order_refunds')
    op.drop_index('ix_tier_events_member_id_at', table_name='tier_events')
    op.drop_table('tier_events')
    op.drop_index(op.f('ix_rebate_settlements_member_id'), table_name='rebate_settlements')
    op.drop_table('rebate_settlements')
    op.drop_index(op.f('ix_points_redemptions_member_id'), table_name='points_redemptions')
    op.drop_table('points_redemptions')
    op.drop_index('ix_points_lots_pending_available_at', table_name='points_lots', postgresql_where=sa.text("state = 'pending'"))
    op.drop_index('ix_points_lots_member_id_state_expires_at', table_name='points_lots')
    op.drop_index('ix_points_lots_available_expires_at', table_name='points_lots', postgresql_where=sa.text("state = 'available' AND remaining > 0"))
    op.drop_table('points_lots')
    op.drop_index('ix_points_ledger_member_id_id', table_name='points_ledger')
    op.drop_table('points_ledger')
    op.drop_table('points_accounts')
    op.drop_index('ix_orders_member_id_occurred_at', table_name='orders')
    op.drop_table('orders')
    op.drop_table('member_tier_status')
    op.drop_index(op.f('ix_coupons_member_id'), table_name='coupons')
    op.drop_table('coupons')
    op.drop_table('rebate_programs')
