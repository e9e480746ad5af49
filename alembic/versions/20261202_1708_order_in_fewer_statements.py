"""the order function writes an order's points, events and member in one statement after the spend

Revision ID: 1708
Revises: 1707
Create Date: 2026-12-02 13:10:00

Why (issue #17): on this 2-core machine an order's database CPU is shared with the API's, and most of it was
per-statement cost, not work: a flat profile (perf, pgbench on the function) is spread over the lock table's
and relation cache's hash lookups, plan revalidation, executor start-up and expression set-up, once for each
of the eleven statements an order ran inside ``loyalty_record_order`` (1703). After the order's row, the
member's lock and the spend, the account, the lot, the ledger entry, the events and the member's update now
go in one data-modifying statement, and the answer is ``RETURN NEXT`` instead of a ``RETURN QUERY``: six
statements, the same rows with the same values.

- The account's pending points: an ``UPDATE``, and the upsert only when the member has no account yet (the
  upsert's ``ON CONFLICT DO UPDATE`` locked the row first, a WAL record per order that a plain update does not
  write).
- The events: one multi-row ``INSERT`` in the order they were written before (``points.earned``,
  ``member.reactivated``, ``order.recorded``, ``tier.changed``), so their ids keep that order.
- The spend is counted before that statement, right after the order's insert (the statement saw the order
  then as now), so the member's new tier goes into the same statement. The spend is the rule's own text as
  before (``tests/domain/test_rule_homes.py``). An upgrade's ``member_tier_status`` and ``tier_events`` rows
  stay separate statements: rare, and as parts of the common statement every order would open their tables.
- Replays, conflicts and refusals are answered as before.

Measured (pgbench on the function, benchmark database): docs/hot-paths.md, issue #17.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '1708'
down_revision: str | None = '1707'
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
    v_spend bigint;
    v_upgrade boolean;
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
            outcome := CASE WHEN o.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END;
            order_row := o;
        ELSE
            outcome := CASE WHEN v_found THEN 'member_closed' ELSE 'member_not_found' END;
            order_row := NULL;
        END IF;
        RETURN NEXT;
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
        outcome := CASE WHEN o.payload_hash = p_payload_hash THEN 'replayed' ELSE 'conflict' END;
        order_row := o;
        RETURN NEXT;
        RETURN;
    END IF;

    -- Upgrade at once when the rolling spend (this order and those committed by others while this one waited
    -- included) reaches a higher tier; never lower a tier here.
    -- The spend is the tier rule's SQL (tiers/rules.py::QUALIFYING_SPEND_SQL) as a static statement, planned once
    -- per connection; tests/domain/test_rule_homes.py checks that this text is the rule's (1703).
    SELECT coalesce((SELECT sum(qs.amount_fen - qs.refunded_fen) FROM orders qs
                     WHERE qs.member_id = p_member_id AND qs.occurred_at > p_window_start AND qs.occurred_at <= p_now), 0)
    INTO v_spend;
    v_target := loyalty_tier_for(v_spend, p_tiers, p_thresholds_fen);
    v_upgrade := array_position(p_tiers, v_target) > array_position(p_tiers, v_tier);
    IF v_upgrade THEN
        UPDATE member_tier_status SET below_since = NULL WHERE member_id = p_member_id;
        INSERT INTO tier_events (member_id, from_tier, to_tier, cause, spend_fen, at)
        VALUES (p_member_id, v_tier, v_target, 'order:' || p_order_id, v_spend, p_now);
    ELSE
        v_target := v_tier;
    END IF;

    -- One statement for the rest (1708): each statement has a fixed cost (locks, plan checks, executor start-up)
    -- that was most of an order's database CPU.
    WITH account AS (
        -- A plain update: the upsert below locked the row first (a WAL record); it is only for a first account.
        UPDATE points_accounts SET pending = pending + v_earned, updated_at = p_now
        WHERE member_id = p_member_id AND v_earned > 0
        RETURNING member_id
    ), first_account AS (
        INSERT INTO points_accounts (member_id, available, pending, debt, updated_at)
        SELECT p_member_id, 0, v_earned, 0, p_now WHERE v_earned > 0 AND NOT EXISTS (SELECT FROM account)
        ON CONFLICT (member_id) DO UPDATE
            SET pending = points_accounts.pending + excluded.pending, updated_at = excluded.updated_at
    ), lot AS (
        INSERT INTO points_lots (member_id, amount, remaining, state, source, source_ref, available_at, expires_at,
                                 created_at)
        SELECT p_member_id, v_earned, v_earned, 'pending', 'order', o.id::text, p_available_at, p_expires_at, p_now
        WHERE v_earned > 0  -- source_ref: the order's own id
        RETURNING id
    ), ledger AS (
        INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                                   details, created_at)
        SELECT p_member_id, 'earn', v_earned, 0, lot.id, 'order', o.id::text, jsonb_build_object('order_id', p_order_id),
               p_now
        FROM lot
    ), member AS (
        UPDATE members
        SET last_purchase_at = CASE WHEN last_purchase_at IS NULL OR p_occurred_at > last_purchase_at
                                    THEN p_occurred_at ELSE last_purchase_at END,
            status = CASE WHEN status IN ('dormant', 'lapsed') THEN 'active' ELSE status END,
            tier = v_target, updated_at = p_now
        WHERE id = p_member_id
    )
    INSERT INTO domain_events (kind, member_id, payload, occurred_at)
    SELECT e.kind, p_member_id, e.payload, p_now
    FROM (VALUES
        (1, 'points.earned', v_earned > 0,
         jsonb_build_object('order_id', p_order_id, 'points', v_earned, 'available_at', p_available_at_text)),
        (2, 'member.reactivated', v_status IN ('dormant', 'lapsed'), jsonb_build_object('from', v_status)),
        (3, 'order.recorded', true,
         jsonb_build_object('order_id', p_order_id, 'amount_fen', p_amount_fen, 'points', v_earned,
                            'occurred_at', p_occurred_at_text)),
        (4, 'tier.changed', v_upgrade,
         jsonb_build_object('from', v_tier, 'to', v_target, 'cause', 'order:' || p_order_id, 'spend_fen', v_spend))
    ) AS e(n, kind, wanted, payload)
    WHERE e.wanted
    ORDER BY e.n;  -- ids in the order the events happened

    outcome := 'created';
    order_row := o;
    RETURN NEXT;
END
$fn$
"""


def upgrade() -> None:
    op.get_bind().exec_driver_sql(RECORD_ORDER)


def downgrade() -> None:
    # Alembic has loaded every revision already: 1703's function body is read from its module (same signature).
    script = op.get_context().script
    earlier = script.get_revision("1703") if script is not None else None
    assert earlier is not None
    op.get_bind().exec_driver_sql(earlier.module.RECORD_ORDER.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION",
                                                                      1))
