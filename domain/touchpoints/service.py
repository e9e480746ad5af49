"""Touches and the outbox: record decisions, claim due touches, record deliveries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import telemetry
from domain.contact_policy.rules import Decision, Verdict
from domain.events.service import record_event
from domain.members.models import ContactChannel
from domain.members.service import set_channel_reachability
from domain.ports import DeliveryOutcome, DeliveryResult
from domain.touchpoints.models import COUNTED as COUNTED  # re-exported: callers know it as touchpoints.COUNTED
from domain.touchpoints.models import CallTask, DeliveryAttempt, Touch, TouchStatus


def touch_row(*, member_id: int, channel: str, purpose: str, source: str, idempotency_key: str, template: str,
              variables: dict[str, Any], decision: Decision, now: datetime) -> dict[str, Any]:
    """The request with the gate's decision, as a row to store; approved and deferred touches enter the outbox."""
    queued = decision.verdict in (Verdict.APPROVED, Verdict.DEFERRED)
    return {"member_id": member_id, "channel": channel, "purpose": purpose, "source": source,
            "idempotency_key": idempotency_key, "template": template, "variables": variables,
            "decision": decision.verdict.value, "reasons": list(decision.reasons),
            "status": TouchStatus.QUEUED if queued else TouchStatus.REJECTED, "send_at": decision.send_at,
            "next_allowed_at": decision.next_allowed_at, "requested_at": now, "attempts": 0}


INSERT_TOUCHES_SQL = """
INSERT INTO touches (member_id, channel, purpose, source, idempotency_key, template, variables, decision, reasons,
                     status, send_at, next_allowed_at, requested_at, attempts)
SELECT r.member_id, r.channel, r.purpose, r.source, r.idempotency_key, r.template, r.variables, r.decision,
       ARRAY(SELECT jsonb_array_elements_text(r.reasons)), r.status, r.send_at, r.next_allowed_at, r.requested_at,
       r.attempts
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(member_id bigint, channel text, purpose text, source text,
     idempotency_key text, template text, variables jsonb, decision text, reasons jsonb, status text,
     send_at timestamptz, next_allowed_at timestamptz, requested_at timestamptz, attempts int)
RETURNING touches.*
"""


def insert_touches(session: Session, rows: list[dict[str, Any]]) -> list[Touch]:
    """Store many touches in one statement (the rows travel as one JSON parameter, so a batch of thousands
    costs the driver no per-row placeholders); the stored touches come back in the rows' order."""
    if not rows:
        return []
    payload = json.dumps(rows, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    stored = session.scalars(sa.select(Touch).from_statement(sa.text(INSERT_TOUCHES_SQL)), {"rows": payload})
    by_key = {(t.source, t.idempotency_key): t for t in stored}
    telemetry.count_gate_decisions((t.decision, t.purpose, t.channel, t.reasons) for t in by_key.values())
    return [by_key[(r["source"], r["idempotency_key"])] for r in rows]


def touches_of(session: Session, *, member_id: int, limit: int = 50, before_id: int | None = None) -> list[Touch]:
    """The member's touches with decisions and reasons, newest first."""
    query = select(Touch).where(Touch.member_id == member_id)
    if before_id:
        query = query.where(col(Touch.id) < before_id)
    return list(session.exec(query.order_by(col(Touch.id).desc()).limit(limit)))


def claim_due(session: Session, *, now: datetime, limit: int, lease: timedelta) -> list[Touch]:
    """Claim due touches for this dispatcher: queued ones whose time has come, and ones whose previous
    dispatcher's lease ran out (it died between sending and recording). SKIP LOCKED: two dispatchers
    never claim the same touch. The caller commits at once, then sends outside the transaction."""
    rows = list(session.exec(
        select(Touch).where(sa.or_(
            sa.and_(col(Touch.status) == TouchStatus.QUEUED, col(Touch.send_at) <= now,
                    sa.or_(col(Touch.next_attempt_at).is_(None), col(Touch.next_attempt_at) <= now)),
            sa.and_(col(Touch.status) == TouchStatus.SENDING, col(Touch.claimed_until) < now)))
        .order_by(col(Touch.send_at)).limit(limit).with_for_update(skip_locked=True)))
    for touch in rows:
        touch.status = TouchStatus.SENDING
        touch.claimed_until = now + lease
        touch.attempts += 1
        session.add(touch)
    session.flush()
    return rows


def suppress(session: Session, *, touch_id: int, reasons: tuple[str, ...], now: datetime) -> None:
    """The touch may not go out any more (an opt-out or complaint arrived after it was queued)."""
    touch = session.get(Touch, touch_id)
    assert touch is not None
    touch.status, touch.reasons, touch.claimed_until = TouchStatus.SUPPRESSED, [*touch.reasons, *reasons], None
    session.add(touch)


def create_call_task(session: Session, *, touch: Touch, now: datetime) -> CallTask:
    """Hand a phone touch to the call center; creating the task is its delivery."""
    assert touch.id is not None
    existing = session.exec(select(CallTask).where(CallTask.touch_id == touch.id)).first()
    task = existing or CallTask(touch_id=touch.id, member_id=touch.member_id, purpose=touch.purpose,
                                template=touch.template, due_at=touch.send_at or now, created_at=now)
    session.add(task)
    session.flush()
    return task


def record_delivery(session: Session, *, touch_id: int, result: DeliveryResult, now: datetime, max_attempts: int,
                    backoff: timedelta) -> Touch:
    """Record what an adapter answered: sent; retried later with exponential backoff; or failed for good."""
    touch = session.exec(select(Touch).where(Touch.id == touch_id).with_for_update()).one()
    session.add(DeliveryAttempt(touch_id=touch_id, attempt=touch.attempts, outcome=result.outcome.value,
                                provider_ref=result.provider_ref, reason=result.reason, at=now))
    touch.claimed_until = None
    if result.outcome == DeliveryOutcome.SENT:
        touch.status, touch.sent_at, touch.provider_ref = TouchStatus.SENT, now, result.provider_ref
        record_event(session, kind="touch.sent", member_id=touch.member_id,
                     payload={"touch_id": touch.id, "channel": touch.channel, "template": touch.template}, now=now)
    elif result.outcome == DeliveryOutcome.RETRY and touch.attempts < max_attempts:
        delay = timedelta(seconds=result.retry_after_seconds) if result.retry_after_seconds else \
            backoff * (2 ** (touch.attempts - 1))
        touch.status, touch.next_attempt_at, touch.last_error = TouchStatus.QUEUED, now + delay, result.reason
    else:
        if result.channel_unreachable:
            set_channel_reachability(session, member_id=touch.member_id, channel=ContactChannel(touch.channel),
                                     reachable=False, reason=result.reason or "provider_unreachable", now=now)
        touch.status = TouchStatus.FAILED
        touch.last_error = (result.reason or "failed") if result.outcome == DeliveryOutcome.FAILED else \
            f"gave up after {touch.attempts} attempts: {result.reason}"
    session.add(touch)
    return touch


def record_delivery_receipt(session: Session, *, channel: str, provider_ref: str, status: str, detail: str | None,
                            now: datetime) -> Touch | None:
    """A provider's asynchronous delivery report, stored on the touch it refers to (None if unknown)."""
    touch = session.exec(select(Touch).where(Touch.channel == channel, Touch.provider_ref == provider_ref)).first()
    if touch is not None:
        touch.delivery_status = status[:64]
        if detail:
            touch.last_error = detail[:300]
        session.add(touch)
    return touch


def attempts_of(session: Session, *, touch_id: int) -> list[DeliveryAttempt]:
    return list(session.exec(select(DeliveryAttempt).where(DeliveryAttempt.touch_id == touch_id)
                             .order_by(col(DeliveryAttempt.id))))


def suppressions_by_day(session: Session, *, since: datetime, until: datetime, timezone: str
                        ) -> list[tuple[str, str, int]]:
    """How many touches the gate refused, per local day and reason (a refusal with two reasons counts under
    both), plus those suppressed at send time: the supervisor's view of what the policy holds back."""
    rows = session.execute(sa.text("""
        SELECT to_char(t.requested_at AT TIME ZONE :tz, 'YYYY-MM-DD') AS day, r.reason, count(*) AS n
        FROM touches t
        CROSS JOIN LATERAL unnest(CASE WHEN t.status = 'suppressed' THEN ARRAY['suppressed_at_send']
                                       ELSE t.reasons END) AS r(reason)
        WHERE t.requested_at >= :since AND t.requested_at < :until
          AND (t.decision = 'rejected' OR t.status = 'suppressed')
        GROUP BY 1, 2 ORDER BY 1, 2"""), {"since": since, "until": until, "tz": timezone}).all()
    return [(str(day), str(reason), int(n)) for day, reason, n in rows]
