"""Points use cases: earn, reverse, release, redeem, adjust, expire, read, verify.

Every change writes a ledger entry and updates the account row in the same transaction, under a lock
on the account row, so the balance shown always equals the sum of the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.db import among, forget_loaded, from_table_row
from domain.errors import Conflict, InvalidInput, NotFound, PolicyRefused
from domain.events.service import record_event
from domain.points.models import EntryKind, LedgerEntry, LotState, PointsAccount, PointsLot, Redemption
from domain.points.rules import LotView, add_months, allocate_redemption_to_lots
from domain.settings import get_settings


def payload_hash(payload: dict[str, Any]) -> str:
    """A stable fingerprint of a request, to tell an honest replay from a reused key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def lock_account(session: Session, *, member_id: int, now: datetime) -> PointsAccount:
    """The member's account row, created if needed, locked until the transaction ends."""
    locked = select(PointsAccount).where(PointsAccount.member_id == member_id).with_for_update() \
        .execution_options(populate_existing=True)
    account = session.exec(locked).first()
    if account is None:  # the member's first points: create the row (a concurrent creator waits on it)
        session.execute(sa.text(
            "INSERT INTO points_accounts (member_id, available, pending, debt, updated_at) "
            "VALUES (:m, 0, 0, 0, :now) ON CONFLICT DO NOTHING"), {"m": member_id, "now": now})
        account = session.exec(locked).one()
    return account


def _entry(session: Session, account: PointsAccount, *, kind: EntryKind, pending: int = 0, available: int = 0,
           source: str, source_ref: str, now: datetime, lot_id: int | None = None, reason: str | None = None,
           actor: str | None = None, details: dict[str, Any] | None = None) -> LedgerEntry:
    entry = LedgerEntry(member_id=account.member_id, kind=kind, pending_delta=pending, available_delta=available,
                        lot_id=lot_id, source=source, source_ref=source_ref, reason=reason, actor=actor,
                        details=details or {}, created_at=now)
    account.pending += pending
    account.available += available
    account.updated_at = now
    session.add(entry)
    session.add(account)
    return entry


def _available_lots(session: Session, *, member_id: int) -> list[PointsLot]:
    return list(session.exec(select(PointsLot).where(
        PointsLot.member_id == member_id, PointsLot.state == LotState.AVAILABLE, PointsLot.remaining > 0)
        .order_by(col(PointsLot.expires_at), col(PointsLot.id)).with_for_update()))


def _take_from_lots(session: Session, allocations: list[tuple[int, int]]) -> None:
    for lot_id, taken in allocations:
        session.execute(sa.update(PointsLot).where(col(PointsLot.id) == lot_id)
                        .values(remaining=PointsLot.remaining - taken))  # type: ignore[operator]


REDEEM_SQL = """
SELECT r.outcome, r.balance_available, (r.redemption_row).* FROM loyalty_redeem_points(
    %(sent_by)s, %(member_id)s::integer, %(redemption_id)s, %(points)s::integer, %(reason)s, %(payload_hash)s,
    %(now)s::timestamptz) r
"""


def redemption_parameters(*, member_id: int, redemption_id: str, points: int, reason: str,
                          now: datetime, sent_by: str = "") -> dict[str, Any]:
    """The parameters of ``REDEEM_SQL`` (migrations 1701, 1503); refuses a non-positive amount."""
    if points <= 0:
        raise InvalidInput("points must be positive", code="invalid_points")
    return {"sent_by": sent_by, "member_id": member_id, "redemption_id": redemption_id, "points": points,
            "reason": reason,
            "payload_hash": payload_hash({"member_id": member_id, "points": points, "reason": reason}), "now": now}


def redemption_clash(redemption_id: str) -> Conflict:
    """What a unique violation of ``REDEEM_SQL`` means: the caller used ``redemption_id`` at this moment for
    another member, and the statement undid itself."""
    return Conflict(f"redemption {redemption_id} exists", code="redemption_conflict",
                    details={"redemption_id": redemption_id})


def redemption_outcome(row: Mapping[Any, Any], *, member_id: int, redemption_id: str,
                       points: int) -> tuple[Redemption, bool]:
    """Turn the statement's answer into the redemption and whether it was a replay, or the refusal."""
    outcome = row["outcome"]
    if outcome == "member_not_found":
        raise NotFound(f"member {member_id} not found", code="member_not_found", details={"member_id": member_id})
    if outcome == "conflict":
        raise Conflict(f"redemption {redemption_id} was sent before with other values",
                       code="redemption_conflict", details={"redemption_id": redemption_id})
    if outcome == "insufficient_points":
        available = row["balance_available"]
        raise PolicyRefused(f"balance {available} is short of {points}", code="insufficient_points",
                            details={"available": available, "requested": points})
    redemption = from_table_row(Redemption, row)
    return redemption, outcome == "replayed"


def redeem_points(session: Session, *, member_id: int, redemption_id: str, points: int, reason: str,
                  now: datetime, sent_by: str = "") -> tuple[Redemption, bool]:
    """Spend available points, oldest-expiring lots first. Idempotent by ``redemption_id`` within ``sent_by``
    (the caller's namespace); refused when the balance is short. Returns the redemption and whether it was a
    replay. One statement (``REDEEM_SQL``)."""
    params = redemption_parameters(member_id=member_id, redemption_id=redemption_id, points=points, reason=reason,
                                   now=now, sent_by=sent_by)
    session.flush()
    try:
        row = session.connection().exec_driver_sql(REDEEM_SQL, params).mappings().one()
    except sa.exc.IntegrityError as exc:
        raise redemption_clash(redemption_id) from exc
    redemption, replayed = redemption_outcome(row, member_id=member_id, redemption_id=redemption_id, points=points)
    if not replayed:
        forget_loaded(session, PointsAccount, member_id, ("available", "updated_at"))
    return redemption, replayed


def adjust_points(session: Session, *, member_id: int, adjustment_id: str, points: int, reason: str, actor: str,
                  now: datetime) -> tuple[LedgerEntry, bool]:
    """An administrator's correction. A credit is an available lot with the normal expiry; a debit takes
    from the oldest lots and may not overdraw. Idempotent by ``adjustment_id``."""
    if points == 0:
        raise InvalidInput("an adjustment of 0 points changes nothing", code="invalid_points")
    account = lock_account(session, member_id=member_id, now=now)
    existing = session.exec(select(LedgerEntry).where(LedgerEntry.source == "adjustment",
                                                      LedgerEntry.source_ref == adjustment_id)).first()
    if existing is not None:
        if (existing.member_id, existing.available_delta, existing.reason) != (member_id, points, reason):
            raise Conflict(f"adjustment {adjustment_id} was sent before with other values",
                           code="adjustment_conflict", details={"adjustment_id": adjustment_id})
        return existing, True
    lot_id = None
    if points > 0:
        expires_at = add_months(now, get_settings().points_expiry_months)
        lot = PointsLot(member_id=member_id, amount=points, remaining=points, state=LotState.AVAILABLE,
                        source="adjustment", source_ref=adjustment_id, available_at=now, expires_at=expires_at,
                        created_at=now)
        session.add(lot)
        session.flush()
        lot_id = lot.id
        _pay_debt_from_lot(account, lot)
    else:
        if account.available < -points:
            raise PolicyRefused(f"balance {account.available} is short of {-points}", code="insufficient_points",
                                details={"available": account.available, "requested": -points})
        lots = _available_lots(session, member_id=member_id)
        _take_from_lots(session, allocate_redemption_to_lots(
            [LotView(lot.id or 0, lot.remaining, lot.expires_at) for lot in lots], -points))
    entry = _entry(session, account, kind=EntryKind.ADJUST, available=points, source="adjustment",
                   source_ref=adjustment_id, now=now, lot_id=lot_id, reason=reason, actor=actor)
    record_event(session, kind="points.adjusted", member_id=member_id,
                 payload={"adjustment_id": adjustment_id, "points": points, "reason": reason, "actor": actor}, now=now)
    session.flush()
    return entry, False


def lock_accounts(session: Session, *, member_ids: list[int], now: datetime) -> dict[int, PointsAccount]:
    """Several members' accounts locked in member order (two transfers in opposite directions never deadlock)."""
    return {m: lock_account(session, member_id=m, now=now) for m in sorted(set(member_ids))}


def transfer_points(session: Session, *, from_member_id: int, to_member_id: int, transfer_id: str, now: datetime,
                    points: int | None = None) -> tuple[LedgerEntry | None, bool]:
    """Move available points (all of them when ``points`` is None) to another member's account: the
    oldest-expiring lots first, each arriving as a lot with the same expiry. Two ledger entries, one per
    account, so both balances stay equal to their ledgers and lots. Idempotent by ``transfer_id``; returns
    the incoming entry (None when there was nothing to move) and whether it was a replay."""
    if from_member_id == to_member_id:
        raise InvalidInput("a transfer needs two members", code="invalid_transfer")
    accounts = lock_accounts(session, member_ids=[from_member_id, to_member_id], now=now)
    existing = session.exec(select(LedgerEntry).where(LedgerEntry.source == "pool",
                                                      LedgerEntry.source_ref == transfer_id,
                                                      LedgerEntry.kind == EntryKind.POOL_IN)).first()
    if existing is not None:
        return existing, True
    source, target = accounts[from_member_id], accounts[to_member_id]
    amount = source.available if points is None else points
    if amount <= 0:
        return None, False
    if source.available < amount:
        raise PolicyRefused(f"balance {source.available} is short of {amount}", code="insufficient_points",
                            details={"available": source.available, "requested": amount})
    lots = _available_lots(session, member_id=from_member_id)
    allocations = allocate_redemption_to_lots([LotView(lot.id or 0, lot.remaining, lot.expires_at) for lot in lots],
                                              amount)
    _take_from_lots(session, allocations)
    expiry = {lot.id: lot.expires_at for lot in lots}
    for lot_id, taken in allocations:
        lot = PointsLot(member_id=to_member_id, amount=taken, remaining=taken, state=LotState.AVAILABLE,
                        source="pool", source_ref=f"{transfer_id}:{lot_id}", available_at=now,
                        expires_at=expiry[lot_id], created_at=now)
        session.add(lot)
        _pay_debt_from_lot(target, lot)
    moved = [{"lot_id": a, "points": b} for a, b in allocations]
    _entry(session, source, kind=EntryKind.POOL_OUT, available=-amount, source="pool", source_ref=transfer_id,
           now=now, details={"to_member_id": to_member_id, "lots": moved})
    entry = _entry(session, target, kind=EntryKind.POOL_IN, available=amount, source="pool", source_ref=transfer_id,
                   now=now, details={"from_member_id": from_member_id, "lots": moved})
    session.flush()
    return entry, False


def _pay_debt_from_lot(account: PointsAccount, lot: PointsLot) -> None:
    """Newly available points pay the member's debt first."""
    paid = min(account.debt, lot.remaining)
    lot.remaining -= paid
    account.debt -= paid


@dataclass(frozen=True)
class PointsBalance:
    member_id: int
    available: int
    pending: int
    expiring_soon: int
    """Points that expire within the next ``points_expiring_soon_days``."""
    expiring_soon_date: date | None
    """The first date on which some of them expire."""


def balance_of(session: Session, *, member_id: int, now: datetime) -> PointsBalance:
    """What the member has: available, pending, and what expires soon."""
    return balances_of(session, member_ids=[member_id], now=now)[member_id]


def balances_of(session: Session, *, member_ids: list[int], now: datetime) -> dict[int, PointsBalance]:
    """Balances of many members in two statements (a journey run's batch, say)."""
    accounts = {a.member_id: a for a in session.exec(select(PointsAccount).where(
        among(col(PointsAccount.member_id), member_ids)))}
    expiring = {r[0]: (int(r[1]), r[2]) for r in session.execute(
        sa.select(col(PointsLot.member_id), sa.func.sum(PointsLot.remaining), sa.func.min(PointsLot.expires_at))
        .where(among(col(PointsLot.member_id), member_ids), col(PointsLot.state) == LotState.AVAILABLE,
               col(PointsLot.remaining) > 0, col(PointsLot.expires_at) <= expiring_horizon(now))
        .group_by(col(PointsLot.member_id)))}
    out = {}
    for member_id in member_ids:
        account = accounts.get(member_id)
        amount, first_expiry = expiring.get(member_id, (0, None))
        out[member_id] = compose_balance(member_id=member_id, available=account.available if account else 0,
                                         pending=account.pending if account else 0,
                                         debt=account.debt if account else 0, expiring=amount,
                                         first_expiry=first_expiry)
    return out


# The balance route's whole read: whether the member exists, the account, and what expires soon.
BALANCE_SQL = """
SELECT m.id AS member_id, a.available, a.pending, a.debt, e.amount AS expiring, e.first_expiry
FROM members m
LEFT JOIN points_accounts a ON a.member_id = m.id
CROSS JOIN LATERAL (SELECT coalesce(sum(l.remaining), 0) AS amount, min(l.expires_at) AS first_expiry
                    FROM points_lots l
                    WHERE l.member_id = m.id AND l.state = 'available' AND l.remaining > 0
                      AND l.expires_at <= %(horizon)s::timestamptz) e
WHERE m.id = %(member_id)s::integer
"""


def balance_parameters(*, member_id: int, now: datetime) -> dict[str, Any]:
    return {"member_id": member_id, "horizon": expiring_horizon(now)}


def balance_outcome(row: Mapping[Any, Any] | None, *, member_id: int) -> PointsBalance:
    """The balance from ``BALANCE_SQL``'s row, or NotFound when the member does not exist."""
    if row is None:
        raise NotFound(f"member {member_id} not found", code="member_not_found", details={"member_id": member_id})
    return compose_balance(member_id=member_id, available=row["available"] or 0, pending=row["pending"] or 0,
                           debt=row["debt"] or 0, expiring=int(row["expiring"]), first_expiry=row["first_expiry"])


def member_balance(session: Session, *, member_id: int, now: datetime) -> PointsBalance:
    """The member's balance in one statement; NotFound for an unknown member."""
    session.flush()
    row = session.connection().exec_driver_sql(BALANCE_SQL, balance_parameters(member_id=member_id, now=now)
                                               ).mappings().first()
    return balance_outcome(row, member_id=member_id)


def expiring_horizon(now: datetime) -> datetime:
    return now + timedelta(days=get_settings().points_expiring_soon_days)


def compose_balance(*, member_id: int, available: int, pending: int, debt: int, expiring: int,
                    first_expiry: datetime | None) -> PointsBalance:
    """Debt is paid from the next points, so it is taken off what is about to expire."""
    return PointsBalance(member_id=member_id, available=available, pending=pending,
                         expiring_soon=max(0, expiring - debt),
                         expiring_soon_date=first_expiry.date() if first_expiry and expiring > debt else None)


def ledger_page(session: Session, *, member_id: int, limit: int, before_id: int | None) -> list[LedgerEntry]:
    """The member's ledger, newest first, paged by entry id."""
    query = select(LedgerEntry).where(LedgerEntry.member_id == member_id)
    if before_id:
        query = query.where(col(LedgerEntry.id) < before_id)
    return list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(limit)))


# --- set-based jobs --------------------------------------------------------------------------------

# Accounts are locked before lots, in member order: the same order as redemptions and refunds, so a job and
# a member's request never deadlock.
LOCK_ACCOUNTS_SQL = """
SELECT a.member_id FROM points_accounts a
WHERE a.member_id BETWEEN :lo AND :hi AND a.member_id IN (
    SELECT member_id FROM points_lots WHERE {condition} AND member_id BETWEEN :lo AND :hi)
ORDER BY a.member_id FOR UPDATE
"""
RELEASE_DUE = "state = 'pending' AND available_at <= :as_of"
EXPIRE_DUE = "state = 'available' AND remaining > 0 AND expires_at <= :as_of"

RELEASE_SQL = """
WITH due AS (
    SELECT id, member_id, remaining FROM points_lots
    WHERE state = 'pending' AND available_at <= :as_of AND member_id BETWEEN :lo AND :hi
    ORDER BY member_id, id
    FOR UPDATE
), entries AS (
    INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                               details, created_at)
    SELECT member_id, 'release', -remaining, remaining, id, 'lot', id::text, '{}'::jsonb, :now FROM due
    ON CONFLICT (source, source_ref, kind) DO NOTHING
    RETURNING member_id, lot_id, available_delta
), lots AS (
    UPDATE points_lots l SET state = 'available' FROM entries e WHERE l.id = e.lot_id RETURNING l.id
), totals AS (
    SELECT member_id, sum(available_delta) AS points, count(*) AS lots FROM entries GROUP BY member_id
)
UPDATE points_accounts a SET pending = a.pending - t.points, available = a.available + t.points, updated_at = :now
FROM totals t WHERE a.member_id = t.member_id AND (SELECT count(*) FROM lots) >= 0
RETURNING t.points, t.lots
"""

# Newly available points pay debts first: take each indebted member's debt from their available lots,
# oldest-expiring first. The available balance does not change (it already counts the debt).
PAY_DEBT_SQL = """
WITH indebted AS (
    SELECT member_id, debt FROM points_accounts WHERE debt > 0 AND member_id BETWEEN :lo AND :hi
    ORDER BY member_id FOR UPDATE
), ranked AS (
    SELECT l.id, l.member_id, l.remaining, i.debt,
           sum(l.remaining) OVER (PARTITION BY l.member_id ORDER BY l.expires_at, l.id) AS running
    FROM points_lots l JOIN indebted i USING (member_id)
    WHERE l.state = 'available' AND l.remaining > 0
), taken AS (
    SELECT id, member_id, LEAST(remaining, GREATEST(0, debt - (running - remaining))) AS take FROM ranked
), lots AS (
    UPDATE points_lots l SET remaining = l.remaining - t.take FROM taken t WHERE l.id = t.id AND t.take > 0
    RETURNING t.member_id, t.take
)
UPDATE points_accounts a SET debt = a.debt - s.paid
FROM (SELECT member_id, sum(take) AS paid FROM lots GROUP BY member_id) s WHERE a.member_id = s.member_id
"""

EXPIRE_SQL = """
WITH due AS (
    SELECT id, member_id, remaining FROM points_lots
    WHERE state = 'available' AND remaining > 0 AND expires_at <= :as_of AND member_id BETWEEN :lo AND :hi
    ORDER BY member_id, id
    FOR UPDATE
), entries AS (
    INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref,
                               details, created_at)
    SELECT member_id, 'expire', 0, -remaining, id, 'lot', id::text, '{}'::jsonb, :now FROM due
    ON CONFLICT (source, source_ref, kind) DO NOTHING
    RETURNING member_id, lot_id, available_delta
), lots AS (
    UPDATE points_lots l SET state = 'expired', remaining = 0 FROM entries e WHERE l.id = e.lot_id RETURNING l.id
), totals AS (
    SELECT member_id, -sum(available_delta) AS points, count(*) AS lots FROM entries GROUP BY member_id
)
UPDATE points_accounts a SET available = a.available - t.points, updated_at = :now
FROM totals t WHERE a.member_id = t.member_id AND (SELECT count(*) FROM lots) >= 0
RETURNING t.points, t.lots
"""


def release_due_points(session: Session, *, as_of: datetime, member_range: tuple[int, int], now: datetime
                       ) -> tuple[int, int]:
    """Make pending lots whose return window closed by ``as_of`` available, for members in the range;
    then let them pay debts. Returns (lots, points). Idempotent: a lot is released once (unique entry)."""
    lo, hi = member_range
    session.execute(sa.text(LOCK_ACCOUNTS_SQL.format(condition=RELEASE_DUE)), {"as_of": as_of, "lo": lo, "hi": hi})
    rows = session.execute(sa.text(RELEASE_SQL), {"as_of": as_of, "now": now, "lo": lo, "hi": hi}).all()
    session.execute(sa.text(PAY_DEBT_SQL), {"lo": lo, "hi": hi})
    return sum(r.lots for r in rows), sum(r.points for r in rows)


def expire_due_points(session: Session, *, as_of: datetime, member_range: tuple[int, int], now: datetime
                      ) -> tuple[int, int]:
    """Expire what is left of lots whose expiry date is reached by ``as_of``. Returns (lots, points).
    Idempotent: a lot is expired once (unique ledger entry per lot)."""
    lo, hi = member_range
    session.execute(sa.text(LOCK_ACCOUNTS_SQL.format(condition=EXPIRE_DUE)), {"as_of": as_of, "lo": lo, "hi": hi})
    rows = session.execute(sa.text(EXPIRE_SQL), {"as_of": as_of, "now": now, "lo": lo, "hi": hi}).all()
    return sum(r.lots for r in rows), sum(r.points for r in rows)


def member_id_bounds(session: Session) -> tuple[int, int]:
    """The smallest and largest member id holding points (for chunking jobs)."""
    row = session.execute(sa.text("SELECT coalesce(min(member_id), 0), coalesce(max(member_id), -1) "
                                  "FROM points_accounts")).one()
    return int(row[0]), int(row[1])


VERIFY_SQL = """
WITH ledger AS (
    SELECT member_id, sum(pending_delta) AS pending, sum(available_delta) AS available
    FROM points_ledger GROUP BY member_id
), lots AS (
    SELECT member_id,
           sum(remaining) FILTER (WHERE state = 'pending') AS pending,
           sum(remaining) FILTER (WHERE state = 'available') AS available
    FROM points_lots GROUP BY member_id
)
SELECT a.member_id, a.available, a.pending, a.debt,
       coalesce(l.available, 0) AS ledger_available, coalesce(l.pending, 0) AS ledger_pending,
       coalesce(t.available, 0) AS lots_available, coalesce(t.pending, 0) AS lots_pending
FROM points_accounts a
FULL JOIN ledger l ON l.member_id = a.member_id
LEFT JOIN lots t ON t.member_id = coalesce(a.member_id, l.member_id)
WHERE a.member_id IS NULL
   OR a.available <> coalesce(l.available, 0) OR a.pending <> coalesce(l.pending, 0)
   OR a.pending <> coalesce(t.pending, 0) OR a.available <> coalesce(t.available, 0) - a.debt
   OR a.debt < 0 OR (a.debt > 0 AND coalesce(t.available, 0) > 0)
   {member_filter}
LIMIT 100
"""


def verify_points(session: Session, *, member_id: int | None = None) -> list[dict[str, Any]]:
    """Members whose account disagrees with their ledger or their lots (empty when all is consistent)."""
    sql = VERIFY_SQL.format(member_filter="")
    if member_id is not None:
        sql = f"SELECT * FROM ({sql.replace('LIMIT 100', '')}) v WHERE v.member_id = :m LIMIT 100"
    rows = session.execute(sa.text(sql), {"m": member_id}).mappings().all()
    return [dict(r) for r in rows]
