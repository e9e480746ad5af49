"""Plain factory functions with keyword overrides (no factory framework)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlmodel import Session

from domain.access.models import ApiKey, Scope
from domain.access.service import create_api_key
from domain.members.models import Member, SourceChannel
from domain.members.service import NewMember, join_member

_phones = itertools.count(10_000_000)
DEFAULT_NOW = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)


def next_phone() -> str:
    """A fresh valid mainland mobile number."""
    return f"+86139{next(_phones) % 100_000_000:08d}"


def make_member(session: Session, *, now: datetime | None = None, **overrides: Any) -> Member:
    fields: dict[str, Any] = {"source_channel": SourceChannel.STORE, "phone": next_phone(), "name": "Li Lei"}
    fields.update(overrides)
    member = join_member(session, new=NewMember(**fields), actor="tests", now=now or DEFAULT_NOW)
    session.commit()  # in the rolled-back test transaction this only releases a savepoint
    return member


def make_api_key(session: Session, *, scope: str = "admin", name: str | None = None) -> tuple[ApiKey, str]:
    row, key = create_api_key(session, name=name or f"key-{next(_phones)}", scope=Scope(scope), now=DEFAULT_NOW)
    session.commit()
    return row, key


TEST_PASSWORD = "correct horse battery"


@lru_cache
def _test_password_hash(password: str) -> str:
    from domain.staff.rules import hash_password

    return hash_password(password)  # argon2 is slow on purpose: hash each test password once per run


def make_staff(session: Session, *, role: str = "agent", username: str | None = None, pii_access: bool = False,
               password: str = TEST_PASSWORD, now: datetime | None = None) -> Any:
    from domain.staff.models import StaffAccount, StaffRole

    account = StaffAccount(username=username or f"staff-{next(_phones)}", display_name="Test Person",
                           role=StaffRole(role), pii_access=pii_access, password_hash=_test_password_hash(password),
                           created_at=now or DEFAULT_NOW)
    session.add(account)
    session.commit()
    return account


def staff_auth(session: Session, account: Any, *, now: datetime | None = None) -> dict[str, str]:
    """Headers of a logged-in staff member (a session started without the password round trip). The session
    starts at the real clock, as the API checks expiry against it."""
    from domain.clock import utcnow
    from domain.staff.service import start_session

    issued = start_session(session, account=account, now=now or utcnow())
    session.commit()
    return {"Authorization": f"Bearer {issued.access_token}"}


def member_auth(session: Session, member: Any, *, now: datetime | None = None) -> dict[str, str]:
    """Headers of a member signed in on their phone (a session started as a token exchange would)."""
    from domain.clock import utcnow
    from domain.member_sessions.rules import Proof
    from domain.member_sessions.service import start_member_session

    issued = start_member_session(session, member_id=member.id, proof=Proof.EXCHANGE, client="tests",
                                  now=now or utcnow())
    session.commit()
    return {"Authorization": f"Bearer {issued.access_token}"}


def make_order(session: Session, *, member_id: int, amount_fen: int = 10_000, order_id: str | None = None,
               occurred_at: datetime | None = None, now: datetime | None = None, channel: str = "store") -> Any:
    from domain.orders.service import NewOrder, record_order

    at = occurred_at or DEFAULT_NOW
    # History set up by a test is an import (any date, as the operators' import takes it), not a live POS call.
    order, _ = record_order(session, new=NewOrder(order_id=order_id or f"O-{next(_phones)}", member_id=member_id,
                                                  amount_fen=amount_fen, channel=channel, occurred_at=at, items=[]),
                            now=now or at, imported=True)
    session.commit()
    return order
