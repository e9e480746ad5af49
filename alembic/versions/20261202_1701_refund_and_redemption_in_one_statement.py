"""a refund and a redemption each in one statement, with the SQL forms of FIFO allocation and reversal

Revision ID: 1701
Revises: 1700
Create Date: 2026-12-02 03:00:00

Same shape as ``loyalty_record_order`` (migration 1700): a volatile PL/pgSQL function, so each statement
after a row lock sees what committed while it waited. The rules' Python forms are
``domain/points/rules.py::allocate_redemption_to_lots`` and ``::points_to_reverse``; their SQL forms are
``loyalty_take_from_lots`` and ``loyalty_points_to_reverse`` below, compared on generated cases in
``tests/domain/test_order_statement.py``.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1701'
down_revision: str | None = '1700'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


POINTS_TO_REVERSE = """
CREATE FUNCTION loyalty_points_to_reverse(points_earned integer, points_reversed integer, amount_fen bigint,
                                          refunded_before_fen bigint, refund_fen bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    -- computed on the cumulative refund, each partial refund rounding in the member's favour
    -- (points/rules.py::points_to_reverse)
    SELECT GREATEST(0, (points_earned::bigint * (refunded_before_fen + refund_fen)) / amount_fen
                       - points_reversed)::integer
$fn$
"""

TAKE_FROM_LOTS = """
CREATE FUNCTION loyalty_take_from_lots(p_member_id integer, p_points integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $fn$
-- Up to p_points from the member's available lots, those that expire first first (ties by lot id), locking
-- them in that order; returns [{"lot_id", "points"}] (points/rules.py::allocate_redemption_to_lots).
DECLARE
    v_left integer := p_points;
    v_take integer;
    v_lot record;
    v_allocations jsonb := '[]'::jsonb;
BEGIN
    IF v_left <= 0 THEN
        RETURN v_allocations;
    END IF;
    FOR v_lot IN SELECT id, remaining FROM points_lots
                 WHERE member_id = p_member_id AND state = 'available' AND remaining > 0
                 ORDER BY expires_at, id FOR UPDATE LOOP
        v_take := LEAST(v_lot.remaining, v_left);
        UPDATE points_lots SET remaining = remaining - v_take WHERE id = v_lot.id;
        v_allocations := v_allocations || jsonb_build_array(jsonb_build_object('lot_id', v_lot.id, 'points', v_take));
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;
    RETURN v_allocations;
END
$fn$
"""

LOCK_ACCOUNT = """
CREATE FUNCTION loyalty_lock_points_account(p_member_id integer, p_now timestamptz) RETURNS points_accounts
LANGUAGE plpgsql VOLATILE AS $fn$
-- The member's account row, created if needed, locked until the transaction ends
-- (points/service.py::lock_account).
DECLARE
    a points_accounts;
BEGIN
    SELECT * INTO a FROM points_accounts WHERE member_id = p_member_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO points_accounts (member_id, available, pending, debt, updated_at)
        VALUES (p_member_id, 0, 0, 0, p_now) ON CONFLICT DO NOTHING;
        SELECT * INTO a FROM points_accounts WHERE member_id = p_member_id FOR UPDATE;
    END IF;
    RETURN a;
END
$fn$
"""

REDEEM = """
CREATE FUNCTION loyalty_redeem_points(p_member_id integer, p_redemption_id text, p_points integer, p_reason text,
                                      p_payload_hash text, p_now timestamptz)
RETURNS TABLE (outcome text, balance_available integer, redemption_row points_redemptions)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    a points_accounts;
    r points_redemptions;
    v_allocations jsonb;
BEGIN
    PERFORM 1 FROM members WHERE id = p_member_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'member_not_found', NULL::integer, NULL::points_redemptions;
        RETURN;
    END IF;
    a := loyalty_lock_points_account(p_member_id, p_now);  -- serialises this member's redemptions
    SELECT * INTO r FROM points_redemptions WHERE redemption_id = p_redemption_id;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN r.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END,
                            a.available, r;
        RETURN;
    END IF;
    IF a.available < p_points THEN
        RETURN QUERY SELECT 'insufficient_points', a.available, NULL::points_redemptions;
        RETURN;
    END IF;
    v_allocations := loyalty_take_from_lots(p_member_id, p_points);
    -- A redemption_id already used for another member fails here (unique) and undoes the whole statement.
    INSERT INTO points_redemptions (redemption_id, member_id, points, reason, payload_hash, allocations, created_at)
    VALUES (p_redemption_id, p_member_id, p_points, p_reason, p_payload_hash, v_allocations, p_now)
    RETURNING * INTO r;
    UPDATE points_accounts SET available = available - p_points, updated_at = p_now WHERE member_id = p_member_id;
    INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, source, source_ref, reason,
                              details, created_at)
    VALUES (p_member_id, 'redeem', 0, -p_points, 'redemption', p_redemption_id, p_reason, '{}'::jsonb, p_now);
    RETURN QUERY SELECT 'created', a.available - p_points, r;
END
$fn$
"""

REFUND = """
CREATE FUNCTION loyalty_record_refund(p_order_id text, p_refund_id text, p_amount_fen bigint,
                                      p_occurred_at timestamptz, p_payload_hash text, p_now timestamptz)
RETURNS TABLE (outcome text, refund_member_id integer, refundable_fen bigint, refund_row order_refunds)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    o orders;
    f order_refunds;
    v_reverse integer;
    v_left integer;
    v_pending_taken integer := 0;
    v_available_taken integer := 0;
    v_take integer;
    v_lot record;
    v_lot_id integer;
    v_used integer;
BEGIN
    SELECT * INTO o FROM orders WHERE order_id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'order_not_found', NULL::integer, NULL::bigint, NULL::order_refunds;
        RETURN;
    END IF;
    SELECT * INTO f FROM order_refunds WHERE refund_id = p_refund_id;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN f.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END,
                            o.member_id, o.amount_fen - o.refunded_fen, f;
        RETURN;
    END IF;
    IF p_amount_fen > o.amount_fen - o.refunded_fen THEN
        RETURN QUERY SELECT 'refund_exceeds_order', o.member_id, o.amount_fen - o.refunded_fen, NULL::order_refunds;
        RETURN;
    END IF;
    v_reverse := loyalty_points_to_reverse(o.points_earned, o.points_reversed, o.amount_fen, o.refunded_fen,
                                           p_amount_fen);
    -- A refund_id already used on another order fails here (unique) and undoes the whole statement.
    INSERT INTO order_refunds (refund_id, order_pk, amount_fen, points_reversed, payload_hash, occurred_at,
                               recorded_at)
    VALUES (p_refund_id, o.id, p_amount_fen, v_reverse, p_payload_hash, p_occurred_at, p_now)
    RETURNING * INTO f;
    UPDATE orders SET refunded_fen = refunded_fen + p_amount_fen, points_reversed = points_reversed + v_reverse
    WHERE id = o.id;

    IF v_reverse > 0 THEN
        -- From the order's own lot first (pending or available), then the member's other available lots
        -- oldest first; what is still missing becomes debt (points/service.py::reverse_order_points).
        PERFORM loyalty_lock_points_account(o.member_id, p_now);
        v_left := v_reverse;
        SELECT id, remaining, state INTO v_lot FROM points_lots
        WHERE source = 'order' AND source_ref = p_order_id FOR UPDATE;
        IF FOUND THEN
            v_lot_id := v_lot.id;
            IF v_lot.remaining > 0 THEN
                v_take := LEAST(v_lot.remaining, v_left);
                UPDATE points_lots SET remaining = remaining - v_take WHERE id = v_lot.id;
                v_left := v_left - v_take;
                IF v_lot.state = 'pending' THEN
                    v_pending_taken := v_take;
                ELSE
                    v_available_taken := v_take;
                END IF;
            END IF;
        END IF;
        IF v_left > 0 THEN
            SELECT coalesce(sum((e ->> 'points')::integer), 0) INTO v_used
            FROM jsonb_array_elements(loyalty_take_from_lots(o.member_id, v_left)) e;
            v_available_taken := v_available_taken + v_used;
            v_left := v_left - v_used;
        END IF;
        UPDATE points_accounts
        SET pending = pending - v_pending_taken, available = available - (v_available_taken + v_left),
            debt = debt + v_left, updated_at = p_now
        WHERE member_id = o.member_id;
        INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                                   details, created_at)
        VALUES (o.member_id, 'reverse', -v_pending_taken, -(v_available_taken + v_left), v_lot_id, 'refund',
                p_refund_id, jsonb_build_object('order_id', p_order_id, 'debt_added', v_left), p_now);
    END IF;
    INSERT INTO domain_events (kind, member_id, payload, occurred_at)
    VALUES ('order.refunded', o.member_id,
            jsonb_build_object('order_id', p_order_id, 'refund_id', p_refund_id, 'amount_fen', p_amount_fen,
                               'points_reversed', v_reverse),
            p_now);
    RETURN QUERY SELECT 'created', o.member_id, o.amount_fen - o.refunded_fen - p_amount_fen, f;
END
$fn$
"""


def upgrade() -> None:
    for sql in (POINTS_TO_REVERSE, TAKE_FROM_LOTS, LOCK_ACCOUNT, REDEEM, REFUND):
        op.get_bind().exec_driver_sql(sql)


def downgrade() -> None:
    for signature in ("loyalty_record_refund(text, text, bigint, timestamptz, text, timestamptz)",
                      "loyalty_redeem_points(integer, text, integer, text, text, timestamptz)",
                      "loyalty_lock_points_account(integer, timestamptz)",
                      "loyalty_take_from_lots(integer, integer)",
                      "loyalty_points_to_reverse(integer, integer, bigint, bigint, bigint)"):
        op.get_bind().exec_driver_sql(f"DROP FUNCTION {signature}")
