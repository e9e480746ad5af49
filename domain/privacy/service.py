"""Privacy operations: a member's data as JSON, erasure on request, retention.

This is the one concept that reads and writes other concepts' tables directly, on purpose: its subject is
"every row about a person", so it walks the schema (``SQLModel.metadata``) rather than asking thirty services,
and a table added tomorrow is exported at once and must be classified in ``rules.MEMBER_TABLES`` (a test
compares the two). Everything is set-based SQL over a list of members, so the retention job erases thousands
in one statement per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

import domain.models  # noqa: F401  (every table, so the export sees the whole schema)
from domain.errors import NotFound
from domain.privacy.models import Erasure
from domain.privacy.rules import MEMBER_KEYS, MEMBER_TABLES, OPENID_TABLES, Action, RetentionPolicy, is_exported


def member_tables() -> dict[str, list[str]]:
    """Every table holding something about a member → the columns that name the member."""
    found = {"members": ["id"]}
    for table in SQLModel.metadata.sorted_tables:
        keys = [key for key in MEMBER_KEYS if key in table.c]
        if keys:
            found[table.name] = keys
    return found


def _where(keys: Sequence[str], param: str) -> str:
    return "(" + " OR ".join(f"{key} = ANY(:{param})" for key in keys) + ")"


def _rows(session: Session, table: str, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    order = ", ".join(c.name for c in SQLModel.metadata.tables[table].primary_key.columns) or "1"
    rows = session.execute(sa.text(f'SELECT to_jsonb(t) FROM "{table}" t WHERE {where} ORDER BY {order}'), params)
    return [{k: v for k, v in row.items() if is_exported(k)} for row in rows.scalars()]


def _openids(session: Session, member_ids: Sequence[int]) -> list[str]:
    return list(session.execute(sa.text(
        "SELECT wechat_openid FROM members WHERE id = ANY(:ids) AND wechat_openid IS NOT NULL "
        "UNION SELECT openid FROM wechat_followers WHERE member_id = ANY(:ids)"), {"ids": list(member_ids)}).scalars())


def export_member(session: Session, *, member_id: int, now: datetime) -> dict[str, Any]:
    """Everything held about one member, table by table (JSON-ready: PostgreSQL renders each row)."""
    if session.execute(sa.text("SELECT 1 FROM members WHERE id = :id"), {"id": member_id}).first() is None:
        raise NotFound(f"member {member_id} not found", code="member_not_found", details={"member_id": member_id})
    ids = [member_id]
    tables = {name: _rows(session, name, _where(keys, "ids"), {"ids": ids}) for name, keys in member_tables().items()}
    openids = _openids(session, ids)
    for name in OPENID_TABLES:
        tables[name] = _rows(session, name, "openid = ANY(:openids)", {"openids": openids})
    return {"member_id": member_id, "exported_at": now.isoformat(),
            "tables": {name: rows for name, rows in sorted(tables.items()) if rows}}


def erase_members(session: Session, *, member_ids: Sequence[int], actor: str, reason: str,
                  now: datetime) -> list[int]:
    """Erase the personal data of these members; return the ones erased now (the others were erased before:
    the tombstone is the idempotency key, so a repeated request changes nothing). Points, orders, coupons and
    the ledger are left whole; see ``rules.MEMBER_TABLES`` for every table's treatment and why."""
    fresh = list(session.execute(sa.text(
        "INSERT INTO privacy_erasures (member_id, erased_at, actor, reason) "
        "SELECT id, :now, :actor, :reason FROM members WHERE id = ANY(:ids) ORDER BY id "
        "ON CONFLICT (member_id) DO NOTHING RETURNING member_id"),
        {"ids": list(member_ids), "now": now, "actor": actor[:100], "reason": reason[:200]}).scalars())
    if not fresh:
        return []
    params: dict[str, Any] = {"ids": fresh, "now": now}
    openids = _openids(session, fresh)
    for name, treatment in OPENID_TABLES.items():
        if openids and treatment.action == Action.DELETE:
            session.execute(sa.text(f'DELETE FROM "{name}" WHERE openid = ANY(:openids)'), {"openids": openids})
    keys_of = member_tables()
    # Deletes first (wechat_followers point at members), the member row last.
    for name, treatment in sorted(MEMBER_TABLES.items(), key=lambda item: item[0] == "members"):
        keys = keys_of.get(name)
        if not keys or treatment.action == Action.KEEP:
            continue
        where = _where(keys, "ids")
        if treatment.action == Action.DELETE:
            session.execute(sa.text(f'DELETE FROM "{name}" WHERE {where}'), params)
        elif treatment.action == Action.END:
            session.execute(sa.text(f'UPDATE "{name}" SET removed_at = :now WHERE {where} AND removed_at IS NULL'),
                            params)
        else:
            assignments = ", ".join(f"{column} = {value}" for column, value in treatment.set.items())
            session.execute(sa.text(f'UPDATE "{name}" SET {assignments} WHERE {where}'), params)
    session.execute(sa.text(
        "INSERT INTO domain_events (kind, member_id, payload, occurred_at) "
        "SELECT 'member.erased', id, jsonb_build_object('actor', CAST(:actor AS text)), :now "
        "FROM unnest(CAST(:ids AS integer[])) AS id"), {**params, "actor": actor[:100]})
    return fresh


def erase_member(session: Session, *, member_id: int, actor: str, reason: str, now: datetime) -> tuple[Erasure, bool]:
    """Erase one member; ``(tombstone, True)`` when erased now, ``(tombstone, False)`` on a repeat."""
    if session.execute(sa.text("SELECT 1 FROM members WHERE id = :id"), {"id": member_id}).first() is None:
        raise NotFound(f"member {member_id} not found", code="member_not_found", details={"member_id": member_id})
    fresh = erase_members(session, member_ids=[member_id], actor=actor, reason=reason, now=now)
    session.expire_all()
    tombstone = session.get(Erasure, member_id)
    assert tombstone is not None
    return tombstone, bool(fresh)


def apply_retention(session: Session, *, policy: RetentionPolicy, as_of: datetime, limit: int) -> dict[str, int]:
    """One chunk of retention at ``as_of`` (at most ``limit`` rows of each kind); the job repeats it until a
    chunk finds nothing. Returns what this chunk did."""
    cut = policy.cutoffs(as_of)
    params = {"cutoff_log": cut["access_log"], "cutoff_touch": cut["touch_content"], "limit": limit}
    access = session.execute(sa.text(
        "DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE at < :cutoff_log LIMIT :limit)"), params)
    attempts = session.execute(sa.text(
        "DELETE FROM delivery_attempts WHERE id IN "
        "(SELECT id FROM delivery_attempts WHERE at < :cutoff_touch LIMIT :limit)"), params)
    touches = session.execute(sa.text(
        "UPDATE touches SET variables = '{}'::jsonb, last_error = NULL WHERE id IN ("
        " SELECT id FROM touches WHERE requested_at < :cutoff_touch AND status NOT IN ('queued', 'sending')"
        " AND (variables <> '{}'::jsonb OR last_error IS NOT NULL) LIMIT :limit)"), params)
    erased: list[int] = []
    if cut["closed_member"] is not None:
        due = list(session.execute(sa.text(
            "SELECT m.id FROM members m WHERE m.status = 'closed' AND m.closed_at < :cutoff "
            "AND NOT EXISTS (SELECT 1 FROM privacy_erasures e WHERE e.member_id = m.id) ORDER BY m.id LIMIT :limit"),
            {"cutoff": cut["closed_member"], "limit": limit}).scalars())
        erased = erase_members(session, member_ids=due, actor="retention",
                               reason=f"closed more than {policy.closed_member_days} days", now=as_of)
    return {"access_log_deleted": _count(access), "delivery_attempts_deleted": _count(attempts),
            "touches_scrubbed": _count(touches), "members_erased": len(erased)}


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
