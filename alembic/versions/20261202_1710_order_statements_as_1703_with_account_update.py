"""the order function goes back to one statement per row (1703's shape), with a plain update of the account

Revision ID: 1710
Revises: 1709
Create Date: 2026-12-02 13:50:00

Why (issue #17): 1708 put the account, the lot, the ledger entry, the events and the member's update into one
data-modifying statement on the theory that a statement's fixed cost was most of an order's database CPU. It
was not, on PostgreSQL 18 with the plans cached: counted with callgrind (a single-user backend recording 300
orders on copies of the benchmark's database, user-space instructions per order, deterministic to 0.1%), 1708's
statement cost 1.8% more than the separate statements it replaced (its plan initialises five ModifyTable nodes,
a sort of the event rows and the first-account upsert on every order). The CPU figures that had suggested a
gain came from a harness that lost the CPU of backends exiting at the end of the run (docs/hot-paths.md).

This is 1703's function again, with the two changes that did count:
- the account's pending points are a plain UPDATE, and the upsert runs only when the member has no account (the
  upsert's ON CONFLICT DO UPDATE locked the row first: one WAL record per order less);
- the answer is RETURN NEXT instead of a RETURN QUERY statement.
Per order, with 1709's inlined tier rule under both: 1,536k instructions (1703's body), 1,563k (1708), 1,529k (this).
The rows, their values and the events' order are unchanged (tests/domain/test_order_statement.py pins them).
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1710'
down_revision: str | None = '1709'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_ORDER = """
CREATE OR REPLACE FUNCTION loyalty_record_order(
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
        -- A plain update (1710): the upsert's ON CONFLICT DO UPDATE locked the row first, a WAL record per order;
        -- it stays for a member's first account.
        UPDATE points_accounts SET pending = pending + v_earned, updated_at = p_now WHERE member_id = p_member_id;
        IF NOT FOUND THEN
            INSERT INTO points_accounts (member_id, available, pending, debt, updated_at)
            VALUES (p_member_id, 0, v_earned, 0, p_now)
            ON CONFLICT (member_id) DO UPDATE
                SET pending = points_accounts.pending + excluded.pending, updated_at = excluded.updated_at;
        END IF;
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
    -- The answer without a query (1710): RETURN QUERY ran one more statement per order.
    outcome := 'created';
    order_row := o;
    RETURN NEXT;
END
$fn$

"""


def upgrade() -> None:
    op.get_bind().exec_driver_sql(RECORD_ORDER)


def downgrade() -> None:
    # Alembic has loaded every revision already: 1708's function body is read from its module (same signature).
    script = op.get_context().script
    earlier = script.get_revision("1708") if script is not None else None
    assert earlier is not None
    op.get_bind().exec_driver_sql(earlier.module.RECORD_ORDER)
