"""API keys and the personal-data access log."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.access.models import AccessLogEntry, ApiKey, Scope
from domain.access.rules import hash_key, new_key, prefix_of
from domain.errors import Conflict, NotFound, Unauthorized
from domain.paging import Page, keyset_page
from domain.settings import get_settings


def create_api_key(session: Session, *, name: str, scope: Scope, now: datetime,
                   pii_access: bool = False) -> tuple[ApiKey, str]:
    """Issue a key; the plain key is returned once and never stored."""
    if session.exec(select(ApiKey).where(ApiKey.name == name)).first() is not None:
        raise Conflict(f"an API key named {name!r} exists", code="api_key_exists", details={"name": name})
    key, prefix, digest = new_key()
    row = ApiKey(name=name, scope=scope, prefix=prefix, key_hash=digest, created_at=now, pii_access=pii_access)
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, *, presented: str) -> ApiKey:
    """The live key matching ``presented``, or Unauthorized."""
    prefix = prefix_of(presented)
    row = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first() if prefix else None
    return check_key(row, presented=presented)


def check_key(row: ApiKey | None, *, presented: str) -> ApiKey:
    """``row`` (the key stored under ``presented``'s prefix) if it is live and ``presented`` is its key, else
    Unauthorized. The one check, whether the row comes from this session or the hot path's cache (api/hot.py)."""
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, hash_key(presented)):
        raise Unauthorized("invalid or revoked API key", code="invalid_api_key")
    return row


def revoke_api_key(session: Session, *, name: str, now: datetime) -> ApiKey:
    """Stop a key from working at once."""
    row = session.exec(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        raise NotFound(f"no API key named {name!r}", code="api_key_not_found")
    row.revoked_at = row.revoked_at or now
    session.add(row)
    return row


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id)))  # type: ignore[arg-type]


def record_access(session: Session, *, api_key_name: str | None, agent_id: str | None, member_id: int, action: str,
                  reason: str, now: datetime, staff_id: int | None = None, read_only_transaction: bool = False) -> None:
    """Write who read whose personal data, when and why, in the reader's transaction.

    When the entry is the transaction's only write (a lookup), its commit need not wait for the disk
    unless ``LOYALTY_ACCESS_LOG_DURABLE_COMMIT`` says so: waiting halves the lookup's throughput, and what a
    PostgreSQL crash could lose is the last fraction of a second of read records, never business data."""
    if read_only_transaction and not get_settings().access_log_durable_commit:
        session.execute(sa.text("SET LOCAL synchronous_commit = off"))
    session.add(AccessLogEntry(api_key_name=api_key_name, agent_id=agent_id, staff_id=staff_id, member_id=member_id,
                               action=action, reason=reason[:200], at=now))


def access_log_for_member(session: Session, *, member_id: int, limit: int = 100) -> list[AccessLogEntry]:
    return list(session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == member_id)
                             .order_by(AccessLogEntry.id.desc()).limit(limit)))  # type: ignore[union-attr]


def list_access_log(session: Session, *, member_id: int | None, agent_id: str | None, api_key_name: str | None,
                    action: str | None, cursor: str | None, limit: int) -> Page[AccessLogEntry]:
    """Who read whose personal data, latest first (for supervisors and the privacy officer)."""
    log = AccessLogEntry.__table__.c  # type: ignore[attr-defined]
    query = sa.select(AccessLogEntry)
    for column, value in ((log.member_id, member_id), (log.agent_id, agent_id), (log.api_key_name, api_key_name),
                          (log.action, action)):
        if value is not None:
            query = query.where(column == value)
    return keyset_page(session, query, order_by=[log.id], cursor=cursor, limit=limit)


def record_bulk_access(session: Session, *, api_key_name: str | None, agent_id: str | None, member_ids: sa.Select[Any],
                       action: str, reason: str, now: datetime, staff_id: int | None = None) -> int:
    """One access-log entry per member of ``member_ids`` (an export), in one statement."""
    log = AccessLogEntry.__table__.c  # type: ignore[attr-defined]
    ids = member_ids.subquery()
    rows = sa.select(sa.literal(api_key_name, sa.String), sa.literal(agent_id, sa.String),
                     sa.literal(staff_id, sa.Integer), ids.c[0], sa.literal(action),
                     sa.literal(reason[:200]), sa.literal(now, sa.DateTime(timezone=True)))
    result = session.execute(sa.insert(AccessLogEntry.__table__).from_select(  # type: ignore[attr-defined]
        [log.api_key_name, log.agent_id, log.staff_id, log.member_id, log.action, log.reason, log.at], rows))
    return int(getattr(result, "rowcount", 0) or 0)
