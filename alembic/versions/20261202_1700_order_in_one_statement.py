"""an order recorded in one statement: loyalty_record_order() and the SQL forms of the earn and tier rules

Revision ID: 1700
Revises: 2001
Create Date: 2026-12-02 02:40:00

Why a PL/pgSQL function rather than one data-modifying CTE: all parts of a CTE share the snapshot taken
when the statement started, so an order that waited for the member's row lock would sum the rolling spend
without the orders committed while it waited (two concurrent 600-yuan orders would both stay at D). Each
statement inside a volatile function takes a fresh snapshot, so after the lock the spend is current.

The rules keep one home: ``domain/points/rules.py::earn_points`` and ``domain/tiers/rules.py::Ladder.tier_for``
are the Python forms; ``loyalty_earn_points`` and ``loyalty_tier_for`` below are their SQL forms, and
``tests/domain/test_order_statement.py`` runs both on generated cases. The qualifying spend is not copied
here: the caller hands in the tier rule's own SQL (``QUALIFYING_SPEND_SQL``) and the function EXECUTEs it.
Every number (multipliers, thresholds, windows, lot dates) is a parameter the caller takes from the settings
through those modules.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1700'
down_revision: str | None = '2001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


EARN_POINTS = """
CREATE FUNCTION loyalty_earn_points(amount_fen bigint, multiplier numeric) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    -- 1 point per yuan times the tier multiplier, rounded down (points/rules.py::earn_points)
    SELECT floor(amount_fen::numeric / 100 * multiplier)::integer
$fn$
"""

TIER_FOR = """
CREATE FUNCTION loyalty_tier_for(spend_fen bigint, tiers text[], thresholds_fen bigint[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    -- the highest tier whose threshold the spend reaches (tiers/rules.py::Ladder.tier_for)
    SELECT t.tier FROM unnest(tiers, thresholds_fen) WITH ORDINALITY AS t(tier, threshold, n)
    WHERE spend_fen >= t.threshold ORDER BY t.n DESC LIMIT 1
$fn$
"""

RECORD_ORDER = """
CREATE FUNCTION loyalty_record_order(
    p_order_id text, p_member_id integer, p_amount_fen bigint, p_channel text, p_occurred_at timestamptz,
    p_items jsonb, p_payload_hash text, p_now timestamptz,
    p_tiers text[], p_multipliers numeric[], p_thresholds_fen bigint[], p_window_start timestamptz,
    p_available_at timestamptz, p_expires_at timestamptz, p_occurred_at_text text, p_available_at_text text,
    p_spend_sql text)
RETURNS TABLE (outcome text, order_row orders)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_found boolean;
    v_tier text;
    v_status text;
    v_target text;
    v_earned integer;
    v_lot integer;
    v_spend bigint;
    o orders;
BEGIN
    -- Orders of one member queue on its row. FOR NO KEY UPDATE does not conflict with the key-share locks
    -- other orders' rows take through their foreign keys, so two orders of one member never deadlock.
    SELECT m.tier, m.status INTO v_tier, v_status FROM members m WHERE m.id = p_member_id FOR NO KEY UPDATE;
    v_found := FOUND;
    IF NOT v_found OR v_status = 'closed' THEN
        -- A replay is answered even when the member cannot buy any more.
        SELECT * INTO o FROM orders WHERE order_id = p_order_id;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN o.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END, o;
        ELSE
            RETURN QUERY SELECT CASE WHEN v_found THEN 'member_closed' ELSE 'member_not_found' END, NULL::orders;
        END IF;
        RETURN;
    END IF;

    v_earned := loyalty_earn_points(p_amount_fen, p_multipliers[array_position(p_tiers, v_tier)]);
    INSERT INTO orders (order_id, member_id, amount_fen, refunded_fen, channel, occurred_at, items, payload_hash,
                        tier_at_order, points_earned, points_reversed, recorded_at)
    VALUES (p_order_id, p_member_id, p_amount_fen, 0, p_channel, p_occurred_at, p_items, p_payload_hash,
            v_tier, v_earned, 0, p_now)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING * INTO o;
    IF NOT FOUND THEN
        -- Sent before (maybe by a transaction that committed while this one waited): this statement's fresh
        -- snapshot sees it. Same payload: a replay; another payload: a conflict.
        SELECT * INTO o FROM orders WHERE order_id = p_order_id;
        RETURN QUERY SELECT CASE WHEN o.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END, o;
        RETURN;
    END IF;

    IF v_earned > 0 THEN
        INSERT INTO points_accounts (member_id, available, pending, debt, updated_at)
        VALUES (p_member_id, 0, v_earned, 0, p_now)
        ON CONFLICT (member_id) DO UPDATE
            SET pending = points_accounts.pending + excluded.pending, updated_at = excluded.updated_at;
        INSERT INTO points_lots (member_id, amount, remaining, state, source, source_ref, available_at, expires_at,
                                 created_at)
        VALUES (p_member_id, v_earned, v_earned, 'pending', 'order', p_order_id, p_available_at, p_expires_at, p_now)
        RETURNING id INTO v_lot;
        INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                                   details, created_at)
        VALUES (p_member_id, 'earn', v_earned, 0, v_lot, 'order', p_order_id, '{}'::jsonb, p_now);
        INSERT INTO domain_events (kind, member_id, payload, occurred_at)
        VALUES ('points.earned', p_member_id,
                jsonb_build_object('order_id', p_order_id, 'points', v_earned, 'available_at', p_available_at_text),
                p_now);
    END IF;
    IF v_status IN ('dormant', 'lapsed') THEN
        INSERT INTO domain_events (kind, member_id, payload, occurred_at)
        VALUES ('member.reactivated', p_member_id, jsonb_build_object('from', v_status), p_now);
    END IF;
    INSERT INTO domain_events (kind, member_id, payload, occurred_at)
    VALUES ('order.recorded', p_member_id,
            jsonb_build_object('order_id', p_order_id, 'amount_fen', p_amount_fen, 'points', v_earned,
                               'occurred_at', p_occurred_at_text),
            p_now);

    -- Upgrade at once when the rolling spend (orders committed by others while this one waited included)
    -- reaches a higher tier; never lower a tier here.
    -- The spend is the tier rule's own SQL (tiers/rules.py::QUALIFYING_SPEND_SQL), handed in by the caller.
    EXECUTE p_spend_sql INTO v_spend USING p_member_id, p_window_start, p_now;
    v_target := loyalty_tier_for(v_spend, p_tiers, p_thresholds_fen);
    IF array_position(p_tiers, v_target) > array_position(p_tiers, v_tier) THEN
        UPDATE member_tier_status SET below_since = NULL WHERE member_id = p_member_id;
        INSERT INTO tier_events (member_id, from_tier, to_tier, cause, spend_fen, at)
        VALUES (p_member_id, v_tier, v_target, 'order:' || p_order_id, v_spend, p_now);
        INSERT INTO domain_events (kind, member_id, payload, occurred_at)
        VALUES ('tier.changed', p_member_id,
                jsonb_build_object('from', v_tier, 'to', v_target, 'cause', 'order:' || p_order_id,
                                   'spend_fen', v_spend),
                p_now);
    ELSE
        v_target := v_tier;
    END IF;
    UPDATE members
    SET last_purchase_at = CASE WHEN last_purchase_at IS NULL OR p_occurred_at > last_purchase_at
                                THEN p_occurred_at ELSE last_purchase_at END,
        status = CASE WHEN status IN ('dormant', 'lapsed') THEN 'active' ELSE status END,
        tier = v_target, updated_at = p_now
    WHERE id = p_member_id;
    RETURN QUERY SELECT 'created', o;
END
$fn$
"""


def upgrade() -> None:
    for sql in (EARN_POINTS, TIER_FOR, RECORD_ORDER):
        op.get_bind().exec_driver_sql(sql)


def downgrade() -> None:
    op.get_bind().exec_driver_sql("DROP FUNCTION loyalty_record_order(text, integer, bigint, text, timestamptz, jsonb, "
                                  "text, timestamptz, text[], numeric[], bigint[], timestamptz, timestamptz, "
                                  "timestamptz, text, text, text)")
    op.get_bind().exec_driver_sql("DROP FUNCTION loyalty_tier_for(bigint, text[], bigint[])")
    op.get_bind().exec_driver_sql("DROP FUNCTION loyalty_earn_points(bigint, numeric)")
