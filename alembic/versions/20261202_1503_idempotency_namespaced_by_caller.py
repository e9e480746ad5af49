"""idempotency keys namespaced by the calling credential: orders, refunds and redemptions carry ``sent_by``

Revision ID: 1503
Revises: 2102
Create Date: 2026-12-02 06:40:00

Before: ``order_id``, ``refund_id`` and ``redemption_id`` were unique across every caller, so one till's key
could replay another's order (and read its answer) or pre-empt it (send the id first, so the real order is
refused as a conflict). Now each row carries ``sent_by`` — ``api:<key name>``, ``staff:<username>`` or
``member:<id>`` (``api.deps.Caller.namespace``) — and the idempotency key is unique per ``(sent_by, id)``.
A refund finds its order only in its own caller's namespace: a till refunds the orders it recorded.

The ledger's and the lots' ``source_ref`` for these sources become the row's own id (as ``lot`` entries
already are): two callers' ``order_id`` may now be equal, and the ledger's ``(source, source_ref, kind)`` key
must not make the second one fail. The caller's id is kept in the entry's ``details``.

Rows written before this migration keep ``sent_by = ''`` (no credential reaches that namespace): a replay of
such an order after the upgrade is recorded as a new order, so upgrade while the tills are quiet. The member
redemptions that 1502's ``/v1/me`` stored as ``me:<member id>:<id>`` move to ``sent_by = 'member:<id>'``.

The three functions keep their bodies from 1700/1701 apart from the lines marked ``-- 1503``.
"""
from collections.abc import Sequence
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = '1503'
down_revision: str | None = '2102'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


RECORD_ORDER = """
CREATE FUNCTION loyalty_record_order(
    p_sent_by text, p_order_id text, p_member_id integer, p_amount_fen bigint, p_channel text,
    p_occurred_at timestamptz, p_items jsonb, p_payload_hash text, p_now timestamptz,
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
        SELECT * INTO o FROM orders WHERE sent_by = p_sent_by AND order_id = p_order_id;  -- 1503
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
    ON CONFLICT (sent_by, order_id) DO NOTHING  -- 1503
    RETURNING * INTO o;
    IF NOT FOUND THEN
        -- Sent before (maybe by a transaction that committed while this one waited): this statement's fresh
        -- snapshot sees it. Same payload: a replay; another payload: a conflict.
        SELECT * INTO o FROM orders WHERE sent_by = p_sent_by AND order_id = p_order_id;  -- 1503
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
                p_now)  -- 1503: the order's own id
        RETURNING id INTO v_lot;
        INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                                   details, created_at)
        VALUES (p_member_id, 'earn', v_earned, 0, v_lot, 'order', o.id::text,
                jsonb_build_object('order_id', p_order_id), p_now);  -- 1503
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

REDEEM = """
CREATE FUNCTION loyalty_redeem_points(p_sent_by text, p_member_id integer, p_redemption_id text, p_points integer,
                                      p_reason text, p_payload_hash text, p_now timestamptz)
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
    SELECT * INTO r FROM points_redemptions WHERE sent_by = p_sent_by AND redemption_id = p_redemption_id;  -- 1503
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
    -- The same caller's redemption_id being used at this moment for another member fails here (unique) and
    -- undoes the whole statement.
    INSERT INTO points_redemptions (sent_by, redemption_id, member_id, points, reason, payload_hash, allocations,
                                    created_at)
    VALUES (p_sent_by, p_redemption_id, p_member_id, p_points, p_reason, p_payload_hash, v_allocations, p_now)
    RETURNING * INTO r;
    UPDATE points_accounts SET available = available - p_points, updated_at = p_now WHERE member_id = p_member_id;
    INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, source, source_ref, reason,
                              details, created_at)
    VALUES (p_member_id, 'redeem', 0, -p_points, 'redemption', r.id::text, p_reason,
            jsonb_build_object('redemption_id', p_redemption_id), p_now);  -- 1503
    RETURN QUERY SELECT 'created', a.available - p_points, r;
END
$fn$
"""

REFUND = """
CREATE FUNCTION loyalty_record_refund(p_sent_by text, p_order_id text, p_refund_id text, p_amount_fen bigint,
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
    SELECT * INTO o FROM orders WHERE sent_by = p_sent_by AND order_id = p_order_id FOR UPDATE;  -- 1503
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'order_not_found', NULL::integer, NULL::bigint, NULL::order_refunds;
        RETURN;
    END IF;
    SELECT * INTO f FROM order_refunds WHERE sent_by = p_sent_by AND refund_id = p_refund_id;  -- 1503
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
    -- The same caller's refund_id being used at this moment on another order fails here (unique) and undoes
    -- the whole statement.
    INSERT INTO order_refunds (sent_by, refund_id, order_pk, amount_fen, points_reversed, payload_hash, occurred_at,
                               recorded_at)
    VALUES (p_sent_by, p_refund_id, o.id, p_amount_fen, v_reverse, p_payload_hash, p_occurred_at, p_now)
    RETURNING * INTO f;
    UPDATE orders SET refunded_fen = refunded_fen + p_amount_fen, points_reversed = points_reversed + v_reverse
    WHERE id = o.id;

    IF v_reverse > 0 THEN
        -- From the order's own lot first (pending or available), then the member's other available lots
        -- oldest first; what is still missing becomes debt (points/service.py::reverse_order_points).
        PERFORM loyalty_lock_points_account(o.member_id, p_now);
        v_left := v_reverse;
        SELECT id, remaining, state INTO v_lot FROM points_lots
        WHERE source = 'order' AND source_ref = o.id::text FOR UPDATE;  -- 1503
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
                f.id::text, jsonb_build_object('order_id', p_order_id, 'refund_id', p_refund_id,
                                               'debt_added', v_left), p_now);  -- 1503
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

OLD_SIGNATURES = (
    "loyalty_record_order(text, integer, bigint, text, timestamptz, jsonb, text, timestamptz, text[], numeric[], "
    "bigint[], timestamptz, timestamptz, timestamptz, text, text, text)",
    "loyalty_record_refund(text, text, bigint, timestamptz, text, timestamptz)",
    "loyalty_redeem_points(integer, text, integer, text, text, timestamptz)",
)
NEW_SIGNATURES = (
    "loyalty_record_order(text, text, integer, bigint, text, timestamptz, jsonb, text, timestamptz, text[], "
    "numeric[], bigint[], timestamptz, timestamptz, timestamptz, text, text, text)",
    "loyalty_record_refund(text, text, text, bigint, timestamptz, text, timestamptz)",
    "loyalty_redeem_points(text, integer, text, integer, text, text, timestamptz)",
)
# (table, its idempotency column, the ledger source whose source_ref names its rows)
KEYED = (("orders", "order_id", "order"), ("order_refunds", "refund_id", "refund"),
         ("points_redemptions", "redemption_id", "redemption"))


def _sibling(revision: str) -> ModuleType:
    """A previous migration's module, for its function bodies (downgrade restores them): alembic has loaded
    every revision already."""
    script = op.get_context().script
    earlier = script.get_revision(revision) if script is not None else None
    assert earlier is not None
    return earlier.module


def upgrade() -> None:
    bind = op.get_bind()
    for signature in OLD_SIGNATURES:
        bind.exec_driver_sql(f"DROP FUNCTION {signature}")
    for table, key, _ in KEYED:
        op.add_column(table, sa.Column("sent_by", sa.String(80), nullable=False, server_default=""))
        op.drop_constraint(f"uq_{table}_{key}", table, type_="unique")
        op.create_unique_constraint(f"uq_{table}_sent_by_{key}", table, ["sent_by", key])
    bind.exec_driver_sql("""
        UPDATE points_lots l SET source_ref = o.id::text FROM orders o
        WHERE l.source = 'order' AND l.source_ref = o.order_id""")
    for table, key, source in KEYED:
        bind.exec_driver_sql(f"""
            UPDATE points_ledger e SET source_ref = t.id::text, details = e.details || jsonb_build_object('{key}', t.{key})
            FROM {table} t WHERE e.source = '{source}' AND e.source_ref = t.{key}""")
    # after the ledger kept its entries' ids: only the row's own id changes here
    bind.exec_driver_sql("""
        UPDATE points_redemptions SET sent_by = 'member:' || member_id,
                                      redemption_id = substr(redemption_id, length('me:' || member_id || ':') + 1)
        WHERE starts_with(redemption_id, 'me:' || member_id || ':')""")
    op.alter_column("touches", "source", type_=sa.String(140), existing_nullable=False)
    for sql in (RECORD_ORDER, REDEEM, REFUND):
        bind.exec_driver_sql(sql)


def downgrade() -> None:
    bind = op.get_bind()
    for signature in NEW_SIGNATURES:
        bind.exec_driver_sql(f"DROP FUNCTION {signature}")
    op.alter_column("touches", "source", type_=sa.String(80), existing_nullable=False)
    bind.exec_driver_sql("""
        UPDATE points_redemptions SET redemption_id = 'me:' || member_id || ':' || redemption_id
        WHERE sent_by = 'member:' || member_id""")
    for table, key, source in KEYED:
        bind.exec_driver_sql(f"""
            UPDATE points_ledger e SET source_ref = t.{key}, details = e.details - '{key}'
            FROM {table} t WHERE e.source = '{source}' AND e.source_ref = t.id::text""")
    bind.exec_driver_sql("""
        UPDATE points_lots l SET source_ref = o.order_id FROM orders o
        WHERE l.source = 'order' AND l.source_ref = o.id::text""")
    for table, key, _ in KEYED:
        op.drop_constraint(f"uq_{table}_sent_by_{key}", table, type_="unique")
        op.create_unique_constraint(f"uq_{table}_{key}", table, [key])  # fails if two callers share an id
        op.drop_column(table, "sent_by")
    old_order, old_points = _sibling("1700"), _sibling("1701")
    bind.exec_driver_sql(old_order.RECORD_ORDER)
    bind.exec_driver_sql(old_points.REFUND)
    bind.exec_driver_sql(old_points.REDEEM)
