"""the order function counts the qualifying spend with a static statement instead of EXECUTE

Revision ID: 1703
Revises: 1504
Create Date: 2026-12-02 10:20:00

Why: ``loyalty_record_order`` (1700, 1503) took the tier rule's spend SQL as a parameter and ran it with
``EXECUTE``, which parses and plans it on every order. Measured on the benchmark's server (pgbench, 16
clients, the function alone on 20,000 members): 0.59–0.63 ms of database CPU per order with ``EXECUTE``,
0.40–0.50 ms with the same statement written in the function (planned once per connection, by PL/pgSQL's
plan cache). The statement is the rule's own text (``domain/tiers/rules.py::QUALIFYING_SPEND_SQL`` with the
function's parameter names, ``domain.tiers.service.QUALIFYING_SPEND_IN_ORDER_FUNCTION``);
``tests/domain/test_rule_homes.py`` fails when the rule and this function's body differ, so a change of the rule
needs a migration like this one. Everything else is 1503's function unchanged, without its last parameter.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1703'
down_revision: str | None = '1504'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITH_SPEND_SQL = ("loyalty_record_order(text, text, integer, bigint, text, timestamptz, jsonb, text, timestamptz, "
                  "text[], numeric[], bigint[], timestamptz, timestamptz, timestamptz, text, text, text)")
WITHOUT_SPEND_SQL = ("loyalty_record_order(text, text, integer, bigint, text, timestamptz, jsonb, text, timestamptz, "
                     "text[], numeric[], bigint[], timestamptz, timestamptz, timestamptz, text, text)")

RECORD_ORDER = """
CREATE FUNCTION loyalty_record_order(
    p_sent_by text, p_order_id text, p_member_id integer, p_amount_fen bigint, p_channel text,
    p_occurred_at timestamptz, p_items jsonb, p_payload_hash text, p_now timestamptz,
    p_tiers text[], p_multipliers numeric[], p_thresholds_fen bigint[], p_window_start timestamptz,
    p_available_at timestamptz, p_expires_at timestamptz, p_occurred_at_text text, p_available_at_text text)
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
        SELECT * INTO o FROM orders WHERE sent_by = p_sent_by AND order_id = p_order_id;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN o.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END, o;
        ELSE
            RETURN QUERY SELECT CASE WHEN v_found THEN 'member_closed' ELSE 'member_not_found' END, NULL::orders;
        END IF;
        RETURN;
    END IF;

    v_earned := loyalty_earn_points(p_amount_fen, p_multipliers[array_position(p_tiers, v_tier)]);
    INSERT INTO orders (sent_by, order_id, member_id, amount_fen, refunded_fen, channel, occurred_at, items,
                        payload_hash, tier_at_order, points_earned, points_reversed, recorded_at)
    VALUES (p_sent_by, p_order_id, p_member_id, p_amount_fen, 0, p_channel, p_occurred_at, p_items, p_payload_hash,
            v_tier, v_earned, 0, p_now)
    ON CONFLICT (sent_by, order_id) DO NOTHING
    RETURNING * INTO o;
    IF NOT FOUND THEN
        -- Sent before (maybe by a transaction that committed while this one waited): this statement's fresh
        -- snapshot sees it. Same payload: a replay; another payload: a conflict.
        SELECT * INTO o FROM orders WHERE sent_by = p_sent_by AND order_id = p_order_id;
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
        VALUES (p_member_id, v_earned, v_earned, 'pending', 'order', o.id::text, p_available_at, p_expires_at,
                p_now)  -- the order's own id
        RETURNING id INTO v_lot;
        INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                                   details, created_at)
        VALUES (p_member_id, 'earn', v_earned, 0, v_lot, 'order', o.id::text,
                jsonb_build_object('order_id', p_order_id), p_now);
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
    -- The spend is the tier rule's SQL (tiers/rules.py::QUALIFYING_SPEND_SQL) as a static statement, planned once
    -- per connection; tests/domain/test_rule_homes.py checks that this text is the rule's (1703).
    SELECT coalesce((SELECT sum(qs.amount_fen - qs.refunded_fen) FROM orders qs
                     WHERE qs.member_id = p_member_id AND qs.occurred_at > p_window_start AND qs.occurred_at <= p_now), 0)
    INTO v_spend;
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
    op.get_bind().exec_driver_sql(f"DROP FUNCTION {WITH_SPEND_SQL}")
    op.get_bind().exec_driver_sql(RECORD_ORDER)


def downgrade() -> None:
    # Alembic has loaded every revision already: 1503's function body is read from its module.
    script = op.get_context().script
    earlier = script.get_revision("1503") if script is not None else None
    assert earlier is not None
    before = earlier.module
    op.get_bind().exec_driver_sql(f"DROP FUNCTION {WITHOUT_SPEND_SQL}")
    op.get_bind().exec_driver_sql(before.RECORD_ORDER)
