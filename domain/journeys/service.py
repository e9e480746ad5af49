"""Journey use cases: enroll set-based, run due steps through the contact gate, report uplift."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.contact_policy import service as gate
from domain.errors import Conflict, InvalidInput, NotFound
from domain.journeys.builtins import BUILT_INS
from domain.journeys.models import Enrollment, Journey, JourneyVersion, StepExecution
from domain.journeys.rules import CONTROL_BUCKET_SQL, conversion_uplift, journey_problems
from domain.lifecycle import service as lifecycle
from domain.members import service as members
from domain.members.models import Member, MemberStatus
from domain.members.rules import BECOMES_DORMANT_SQL, dormancy_params
from domain.organisations import service as organisations
from domain.paging import Page, keyset_page
from domain.points.service import PointsBalance, balances_of
from domain.settings import get_settings
from domain.templates import service as templates
from domain.templates.rules import render


def ensure_builtin_journeys(session: Session, *, now: datetime) -> None:
    """Create the built-in journeys once (an operator may pause or edit them afterwards)."""
    for spec in BUILT_INS:
        if session.exec(select(Journey).where(Journey.key == spec["key"])).first() is not None:
            continue
        journey = Journey(key=spec["key"], name=spec["name"], trigger=spec["trigger"], priority=spec["priority"],
                          created_at=now)
        session.add(journey)
        session.flush()
        session.add(JourneyVersion(journey_id=journey.id or 0, version=1, steps=spec["steps"],
                                   control_share=spec["control_share"], created_at=now))
    session.flush()


def journey_by_key(session: Session, *, key: str) -> Journey:
    journey = session.exec(select(Journey).where(Journey.key == key)).first()
    if journey is None:
        raise NotFound(f"journey {key!r} not found", code="journey_not_found")
    return journey


def _version(session: Session, journey_id: int, version: int) -> JourneyVersion:
    return session.exec(select(JourneyVersion).where(JourneyVersion.journey_id == journey_id,
                                                     JourneyVersion.version == version)).one()


def list_journeys(session: Session, *, status: str | None = None, trigger: str | None = None,
                  cursor: str | None = None, limit: int = 50) -> Page[tuple[Journey, JourneyVersion]]:
    """Journeys with their current version, newest first."""
    journeys, versions = Journey.__table__.c, JourneyVersion.__table__.c  # type: ignore[attr-defined]
    query = sa.select(Journey, JourneyVersion).join(JourneyVersion, sa.and_(
        versions.journey_id == journeys.id, versions.version == journeys.current_version))
    if status:
        query = query.where(journeys.status == status)
    if trigger:
        query = query.where(journeys.trigger == trigger)
    page = keyset_page(session, query, order_by=[journeys.id], cursor=cursor, limit=limit, scalars=False)
    return page.map(lambda row: (row[0], row[1]))


def get_journey(session: Session, *, journey_id: int) -> tuple[Journey, JourneyVersion]:
    """A journey with its current version, or NotFound."""
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(f"journey {journey_id} not found", code="journey_not_found")
    return journey, _version(session, journey_id, journey.current_version)


def set_journey_status(session: Session, *, journey_id: int, status: str) -> Journey:
    """Pause (no new enrollments, no steps run) or resume a journey."""
    if status not in ("active", "paused"):
        raise InvalidInput("status is active or paused", code="invalid_status")
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(f"journey {journey_id} not found", code="journey_not_found")
    journey.status = status
    session.add(journey)
    return journey


TRIGGERS = ("member.joined", "member.dormant", "care.date")


def validate_journey(session: Session, *, trigger: str, steps: list[dict[str, Any]], now: datetime) -> None:
    """Refuse a journey with anything a run could not do (422 naming the step and field); its messages must be
    templates of the catalogue, for the step's purpose, saying only what a run can fill."""
    templates.ensure_builtin_templates(session, now=now)
    catalogue = {t.key: (t.purpose, t.variables) for t in templates.current_templates(session)}
    if trigger not in TRIGGERS:
        raise InvalidInput(f"unknown trigger {trigger!r}", code="invalid_trigger", details={"triggers": TRIGGERS})
    problems = journey_problems(trigger=trigger, steps=steps, templates=catalogue)
    if problems:
        first = problems[0]
        raise InvalidInput(f"step {first.step}: {first.message}", code="invalid_step",
                           details={"step": first.step, "field": first.field,
                                    "problems": [{"step": p.step, "field": p.field, "message": p.message}
                                                 for p in problems]})


def branch_condition_holds(session: Session, *, condition: str, enrollment: Enrollment) -> bool:
    """Conditions a journey can branch on: ``purchased`` (since enrolling), ``tier_in:A,B``,
    ``preferred_channel:wechat``, ``consent_granted:sms``, ``lifecycle:decline`` (stage, or several comma
    separated), ``at_risk`` (on the churn warning's at-risk list)."""
    member = members.get_member(session, member_id=enrollment.member_id)
    name, _, arg = condition.partition(":")
    if name == "purchased":
        return bool(member.last_purchase_at and member.last_purchase_at > enrollment.enrolled_at)
    if name == "tier_in":
        return member.tier in arg.split(",")
    if name == "preferred_channel":
        return (member.preferred_channel or "") == arg
    if name == "consent_granted":
        consent = members.consents_of(session, member_id=member.id or 0).get(arg)  # type: ignore[call-overload]
        return consent is not None and consent.value == "granted"
    if name == "lifecycle":
        return lifecycle.stage_of(session, member_id=enrollment.member_id) in arg.split(",")
    if name == "at_risk":
        return lifecycle.is_at_risk(session, member_id=enrollment.member_id)
    return False


def create_journey(session: Session, *, key: str, name: str, trigger: str, steps: list[dict[str, Any]],
                   control_share: float, now: datetime, priority: int = 0) -> Journey:
    """A new journey, active at once; it enrolls members from its trigger's next occurrences only (an
    operator who wants earlier ones asks for a backfill)."""
    validate_journey(session, trigger=trigger, steps=steps, now=now)
    if session.exec(select(Journey).where(Journey.key == key)).first() is not None:
        raise Conflict(f"a journey {key!r} exists", code="journey_exists")
    journey = Journey(key=key, name=name, trigger=trigger, priority=priority, enrolls_since=now, created_at=now)
    session.add(journey)
    session.flush()
    session.add(JourneyVersion(journey_id=journey.id or 0, version=1, steps=steps, control_share=control_share,
                               created_at=now))
    session.flush()
    return journey


def edit_journey(session: Session, *, journey_id: int, steps: list[dict[str, Any]], control_share: float,
                 now: datetime) -> JourneyVersion:
    """A new version; members already running keep the one they started on."""
    journey = session.exec(select(Journey).where(Journey.id == journey_id).with_for_update()).first()
    if journey is None:
        raise NotFound(f"journey {journey_id} not found", code="journey_not_found")
    validate_journey(session, trigger=journey.trigger, steps=steps, now=now)
    journey.current_version += 1
    version = JourneyVersion(journey_id=journey_id, version=journey.current_version, steps=steps,
                             control_share=control_share, created_at=now)
    session.add(journey)
    session.add(version)
    session.flush()
    return version


# --- enrollment (set-based) ------------------------------------------------------------------------

# One statement per journey: the trigger's occurrences since the journey enrols (``enrolls_since``, or the
# backfill's start), minus members already in a non-care journey of the same or higher priority; a
# lower-priority journey the member is in ends (exited) when this one takes them. Care greetings run beside
# any journey.
ENROLL_SQL = """
WITH candidates AS (
    SELECT t.member_id, t.trigger_ref, t.at
    FROM ({source}) t JOIN members m ON m.id = t.member_id AND m.status <> 'closed'
    WHERE (CAST(:not_before AS timestamptz) IS NULL OR t.at >= :not_before)
      AND (:exclusive IS FALSE OR NOT EXISTS (
          SELECT 1 FROM journey_enrollments x JOIN journeys xj ON xj.id = x.journey_id
          WHERE x.member_id = t.member_id AND x.state = 'active' AND xj.trigger <> 'care.date'
            AND xj.id <> :journey_id AND xj.priority >= :priority))
), inserted AS (
    INSERT INTO journey_enrollments (journey_id, version, member_id, trigger_ref, control, state, step_index,
                                     enrolled_at, next_run_at)
    SELECT :journey_id, :version, c.member_id, c.trigger_ref,
           {bucket} < :control_share, 'active', 0, c.at, c.at + make_interval(days => :first_day)
    FROM candidates c
    ON CONFLICT (journey_id, member_id, trigger_ref) DO NOTHING
    RETURNING member_id
), superseded AS (
    UPDATE journey_enrollments x SET state = 'exited', finished_at = :as_of, next_run_at = NULL
    FROM journeys xj
    WHERE :exclusive AND xj.id = x.journey_id AND x.state = 'active' AND xj.trigger <> 'care.date'
      AND xj.id <> :journey_id AND xj.priority < :priority AND x.member_id IN (SELECT member_id FROM inserted)
    RETURNING x.id
)
SELECT (SELECT count(*) FROM inserted) AS enrolled, (SELECT count(*) FROM superseded) AS superseded
"""

# Welcome is for members who joined within the welcome window of being enrolled: importing members who
# joined long ago records a join event, but must not greet them as new.
JOINED_SOURCE = """SELECT e.member_id, 'event:' || e.id AS trigger_ref, e.occurred_at AS at FROM domain_events e
                   JOIN members jm ON jm.id = e.member_id
                   WHERE e.kind = 'member.joined' AND e.occurred_at > :since AND e.occurred_at <= :as_of
                     AND jm.joined_at > e.occurred_at - make_interval(days => :welcome_days)"""

DORMANT_SOURCE = """SELECT e.member_id, 'dormant:' || e.id AS trigger_ref, e.occurred_at AS at FROM domain_events e
                    WHERE e.kind = 'member.dormant' AND e.occurred_at > :since AND e.occurred_at <= :as_of"""

# The reactivation journey's second door: the churn warning's at-risk list (DOMAIN.md: "the at-risk list feeds
# retention calls and reactivation offers"), once per monthly warning, for active members (a dormant one comes
# in through dormancy; a lapsed one has had the whole journey). A member already in the journey is not enrolled
# twice, and one both turning dormant and at risk comes in once, as dormant (DISTINCT ON, earliest first).
AT_RISK_SOURCE = """SELECT w.member_id, 'at_risk:' || w.month AS trigger_ref, CAST(:as_of AS timestamptz) AS at
                    FROM ({at_risk_list}) w JOIN members ar_m ON ar_m.id = w.member_id AND ar_m.status = 'active'
                    WHERE NOT EXISTS (SELECT 1 FROM journey_enrollments ar_x
                                      WHERE ar_x.member_id = w.member_id AND ar_x.journey_id = :journey_id
                                        AND ar_x.state = 'active')""".replace(
    "{at_risk_list}", lifecycle.AT_RISK_LIST_SQL)
REACTIVATION_SOURCE = (f"SELECT DISTINCT ON (member_id) member_id, trigger_ref, at FROM ({DORMANT_SOURCE}\n"
                       f"UNION ALL\n{AT_RISK_SOURCE}) reactivation ORDER BY member_id, at")

# Members whose care date (birthday, 29 February on the 28th in other years, a holiday, or an important date
# of an organisation they are a key contact or leader of) is today in their own timezone and whose local time
# has reached the greeting hour.
CARE_SOURCE = """
SELECT m.id AS member_id, o.ref AS trigger_ref, CAST(:as_of AS timestamptz) AS at
FROM members m
CROSS JOIN LATERAL (SELECT (CAST(:as_of AS timestamptz) AT TIME ZONE m.timezone) AS local_now) l
CROSS JOIN LATERAL (SELECT extract(year FROM l.local_now)::int AS y) yr
CROSS JOIN LATERAL (
    SELECT 'birthday:' || yr.y AS ref
    WHERE m.birthday IS NOT NULL AND make_date(yr.y, extract(month FROM m.birthday)::int,
          CASE WHEN extract(month FROM m.birthday) = 2 AND extract(day FROM m.birthday) = 29
                    AND NOT (yr.y % 4 = 0 AND (yr.y % 100 <> 0 OR yr.y % 400 = 0))
               THEN 28 ELSE extract(day FROM m.birthday)::int END) = l.local_now::date
    UNION ALL
    SELECT 'holiday:' || h.day FROM jsonb_each_text(CAST(:holidays AS jsonb)) AS h(day, name)
    WHERE CAST(h.day AS date) = l.local_now::date
    UNION ALL
""" + organisations.care_dates_sql(member_id="m.id", year="yr.y", local_date="l.local_now::date") + """
) o
WHERE m.status <> 'closed' AND l.local_now::time >= CAST(:greeting_at AS time)
"""


def _enroll(session: Session, *, trigger: str, source: str, params: dict[str, Any], journey_id: int | None = None,
            since: datetime | None = None) -> int:
    """Enroll into every active journey with this trigger (highest priority first), on its current version.
    ``since``: a backfill's start, in place of the journey's own ``enrolls_since``."""
    total = 0
    query = select(Journey).where(Journey.trigger == trigger, Journey.status == "active")
    if journey_id is not None:
        query = query.where(Journey.id == journey_id)
    for journey in session.exec(query.order_by(col(Journey.priority).desc(), col(Journey.id))):
        version = _version(session, journey.id or 0, journey.current_version)
        sql = ENROLL_SQL.format(source=source, bucket=CONTROL_BUCKET_SQL.format(experiment=":experiment",
                                                                             member_id="c.member_id"))
        row = session.execute(sa.text(sql), {
            **params, "journey_id": journey.id, "version": version.version, "control_share": version.control_share,
            "experiment": f"journey:{journey.key}", "first_day": version.steps[0]["day"] if version.steps else 0,
            "priority": journey.priority, "exclusive": trigger != "care.date",
            "not_before": since if since is not None else journey.enrolls_since}).one()
        total += int(row.enrolled)
    return total


def backfill_journey(session: Session, *, journey_id: int, since: datetime, as_of: datetime) -> int:
    """An operator's explicit request: enrol the trigger occurrences since ``since`` that the journey did not
    see (it enrols only from its creation on by itself). Welcome's window and priorities still apply."""
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(f"journey {journey_id} not found", code="journey_not_found")
    if journey.trigger == "care.date":
        raise InvalidInput("care greetings are not backfilled: a greeting belongs to its day", code="invalid_backfill")
    if since > as_of:
        raise InvalidInput("since is after now", code="invalid_backfill")
    # The at-risk list is today's, not a history: a backfill re-reads the dormancy events only.
    source, extra = ((JOINED_SOURCE, {"welcome_days": get_settings().welcome_window_days})
                     if journey.trigger == "member.joined" else (DORMANT_SOURCE, {}))
    return _enroll(session, trigger=journey.trigger, source=source, journey_id=journey_id, since=since,
                   params={"since": since - timedelta(microseconds=1), "as_of": as_of, **extra})


def enroll_new_members(session: Session, *, as_of: datetime, lookback: timedelta = timedelta(days=7)) -> int:
    """Enroll members who joined (recent ``member.joined`` events) into the welcome journey, once each; only
    those who joined within the welcome window (an import of old members greets nobody)."""
    return _enroll(session, trigger="member.joined", source=JOINED_SOURCE,
                   params={"since": as_of - lookback, "as_of": as_of,
                           "welcome_days": get_settings().welcome_window_days})


MARK_DORMANT_SQL = """
WITH marked AS (
    UPDATE members SET status = 'dormant', updated_at = :as_of
    WHERE {becomes_dormant}
    RETURNING id
)
INSERT INTO domain_events (kind, member_id, payload, occurred_at)
SELECT 'member.dormant', id, jsonb_build_object('from', 'active', 'to', 'dormant'), :as_of FROM marked
""".replace("{becomes_dormant}", BECOMES_DORMANT_SQL.format(members="members"))


def mark_dormant(session: Session, *, as_of: datetime) -> int:
    """Members with no purchase for the dormancy period become dormant (and enter reactivation)."""
    days = get_settings().dormancy_days
    result = session.execute(sa.text(MARK_DORMANT_SQL), {"as_of": as_of, **dormancy_params(as_of=as_of, days=days)})
    return int(getattr(result, "rowcount", 0) or 0)


def enroll_dormant_members(session: Session, *, as_of: datetime, lookback: timedelta = timedelta(days=7)) -> int:
    """Members who turned dormant, and members on the churn warning's at-risk list, enter reactivation."""
    return _enroll(session, trigger="member.dormant", source=REACTIVATION_SOURCE,
                   params={"since": as_of - lookback, "as_of": as_of})


def enroll_care_dates(session: Session, *, as_of: datetime) -> int:
    """Birthday and holiday greetings whose local greeting time has come, once per occasion."""
    import json

    settings = get_settings()
    return _enroll(session, trigger="care.date", source=CARE_SOURCE,
                   params={"as_of": as_of, "holidays": json.dumps(settings.care_holidays),
                           "greeting_at": settings.care_greeting_time, **organisations.care_dates_params()})


# --- running steps ---------------------------------------------------------------------------------


def _variables(member: Member, balance: PointsBalance, occasion: str) -> dict[str, Any]:
    holiday = get_settings().care_holidays.get(occasion.split(":", 1)[1], "") if occasion.startswith("holiday:") else ""
    return {"name": member.name or "member", "tier": member.tier, "points": balance.available,
            "expiring_points": balance.expiring_soon, "member_code": member.member_code, "holiday": holiday}


def active_journeys_of(session: Session, *, member_id: int) -> list[dict[str, Any]]:
    """The journeys the member is in now, with the next step's time."""
    rows = session.execute(sa.text("""
        SELECT j.key, j.name, e.step_index, e.next_run_at, e.control FROM journey_enrollments e
        JOIN journeys j ON j.id = e.journey_id WHERE e.member_id = :m AND e.state = 'active'
        ORDER BY e.enrolled_at DESC LIMIT 10"""), {"m": member_id}).mappings().all()
    return [dict(r) for r in rows]


def runnable_journeys(session: Session) -> list[tuple[int, str]]:
    """(id, key) of the active journeys, so a run can take them one at a time."""
    return [(j.id or 0, j.key) for j in session.exec(select(Journey).where(Journey.status == "active")
                                                   .order_by(col(Journey.priority).desc(), col(Journey.id)))]


def next_run_after_step(*, enrolled_at: datetime, ran_at: datetime, step_day: int, next_day: int) -> datetime:
    """When the next step is due after a step ran: on plan, or — when the step ran late (a pause, a stopped
    scheduler) — the plan's gap from now, so overdue steps catch up one per gap and never in a burst."""
    return max(enrolled_at + timedelta(days=next_day), ran_at + timedelta(days=next_day - step_day))


def run_due_steps(session: Session, *, as_of: datetime, limit: int = 500, journey_id: int | None = None
                  ) -> dict[str, int]:
    """Execute the due step of up to ``limit`` enrollments (of one journey, if given; claimed with SKIP
    LOCKED, so parallel runners share the work). Every message goes through the contact gate; a purchase
    since enrollment converts — after the welcome's first step, which a member who buys at once still gets."""
    counts = {"steps": 0, "converted": 0, "control": 0, "lapsed": 0, "completed": 0}
    converted_ids: list[int] = []
    ids = session.scalars(sa.text("""
        SELECT e.id FROM journey_enrollments e JOIN journeys j ON j.id = e.journey_id
        WHERE e.state = 'active' AND e.next_run_at <= :as_of AND j.status = 'active'
          AND (CAST(:journey_id AS bigint) IS NULL OR j.id = :journey_id)
        ORDER BY e.next_run_at LIMIT :limit FOR UPDATE OF e SKIP LOCKED"""),
        {"as_of": as_of, "limit": limit, "journey_id": journey_id}).all()
    enrollments = list(session.exec(select(Enrollment).where(col(Enrollment.id).in_(ids))
                                    .order_by(col(Enrollment.next_run_at), col(Enrollment.id))))
    in_batch = {m.id: m for m in members.get_members(session, member_ids=sorted({e.member_id for e in enrollments}))}
    chosen = gate.choose_channels(session, member_ids=[e.member_id for e in enrollments])  # steps on "preferred"
    # Message steps are collected and put to the gate together: one set of locks and reads for the batch.
    asking: list[tuple[StepExecution, Member, str, str, gate.TouchRequest]] = []
    versions: dict[tuple[int, int], JourneyVersion] = {}
    for enrollment in enrollments:
        enrollment_id = enrollment.id or 0
        journey = session.get(Journey, enrollment.journey_id)
        assert journey is not None
        key = (journey.id or 0, enrollment.version)
        if key not in versions:
            versions[key] = _version(session, *key)
        version = versions[key]
        member = in_batch[enrollment.member_id]
        converted = bool(member.last_purchase_at and member.last_purchase_at > enrollment.enrolled_at
                         and version.goal == "purchase" and journey.trigger != "care.date")
        # Conversion ends the selling, not the welcome: a member who bought at once still gets its first step.
        welcome_first = (converted and journey.trigger == "member.joined" and enrollment.step_index == 0
                         and version.steps[0]["kind"] == "send" and version.steps[0]["purpose"] != "marketing")
        if converted and not welcome_first:
            _finish(enrollment, "converted", as_of)
            session.add(enrollment)
            counts["converted"] += 1
            converted_ids.append(enrollment_id)
            continue
        if member.status == MemberStatus.CLOSED:
            _finish(enrollment, "exited", as_of)
            session.add(enrollment)
            continue
        step = version.steps[enrollment.step_index]
        execution = StepExecution(enrollment_id=enrollment_id, step_index=enrollment.step_index, outcome="", at=as_of)
        jump: int | str | None = None
        if step["kind"] == "branch":
            taken = branch_condition_holds(session, condition=step["if"], enrollment=enrollment)
            execution.outcome, execution.reasons = ("branch_taken" if taken else "branch_not_taken"), [step["if"]]
            jump = step["goto"] if taken else None
        elif step["kind"] == "lapse":
            # Only a dormant member lapses: one who came in from the at-risk list is still active, and
            # ignoring offers does not end an active membership (their enrolment just completes).
            if member.status == MemberStatus.DORMANT:
                members.set_member_status(session, member_id=member.id or 0, status=MemberStatus.LAPSED, now=as_of)
                execution.outcome = "lapsed"
                counts["lapsed"] += 1
            else:
                execution.outcome = "not_dormant"
                counts["completed"] += 1
        elif enrollment.control:
            execution.outcome = "control_holdout"
            counts["control"] += 1
        elif (channel := chosen.get(member.id or 0) if step["channel"] == "preferred" else step["channel"]) is None:
            # No consented, reachable channel: reported, not sent (and not retried: the step is done).
            execution.outcome, execution.reasons = "rejected", ["no_reachable_channel"]
        else:
            message = enrollment.trigger_ref.split(":", 1)[0] if step["message"] == "{occasion}" else step["message"]
            asking.append((execution, member, enrollment.trigger_ref, message, gate.TouchRequest(
                member_id=member.id or 0, channel=channel, purpose=step["purpose"], source=f"journey:{journey.key}",
                idempotency_key=f"{enrollment_id}:{enrollment.step_index}", template=message, variables={})))
        if execution.outcome:  # a message step's is written once the gate has decided
            session.add(execution)
        counts["steps"] += 1
        enrollment.step_index = jump if isinstance(jump, int) else enrollment.step_index + 1
        if step["kind"] == "lapse":
            _finish(enrollment, "lapsed" if execution.outcome == "lapsed" else "completed", as_of)
        elif jump == "exit":
            _finish(enrollment, "exited", as_of)
        elif welcome_first:
            _finish(enrollment, "converted", as_of)
            counts["converted"] += 1
            converted_ids.append(enrollment_id)
        elif enrollment.step_index >= len(version.steps):
            _finish(enrollment, "completed", as_of)
            counts["completed"] += 1
        else:
            enrollment.next_run_at = next_run_after_step(
                enrolled_at=enrollment.enrolled_at, ran_at=as_of, step_day=step["day"],
                next_day=version.steps[enrollment.step_index]["day"])
        session.add(enrollment)
    if asking:
        balances = balances_of(session, member_ids=sorted({m.id or 0 for _, m, *_ in asking}), now=as_of)
        templates.ensure_builtin_templates(session, now=as_of)
        catalogue = templates.current_templates(session, keys=sorted({message for *_, message, _ in asking}))
        requests = []
        for _, member, occasion, message, request in asking:
            template = templates.template_for(catalogue, key=message, channel=request.channel)
            if template is None:  # validated at creation; a template can only be missing if data was edited by hand
                raise InvalidInput(f"unknown template {message!r}", code="unknown_template")
            variables = _variables(member, balances[member.id or 0], occasion)
            variables["body"] = render(template.body, {k: variables[k] for k in template.variables})
            # The touch's purpose is the template's (the same as the step's, checked at creation).
            requests.append(replace(request, variables=variables, purpose=template.purpose))
        for (execution, *_), (touch, _) in zip(asking, gate.request_touches(session, requests, now=as_of),
                                               strict=True):
            execution.outcome, execution.reasons, execution.touch_id = touch.decision, list(touch.reasons), touch.id
            session.add(execution)
    session.flush()
    record_converted_events(session, enrollment_ids=converted_ids, now=as_of)
    return counts


def _finish(enrollment: Enrollment, state: str, now: datetime) -> None:
    enrollment.state, enrollment.finished_at, enrollment.next_run_at = state, now, None


def record_conversions(session: Session, *, as_of: datetime) -> int:
    """Mark active and finished enrollments converted when the member bought after enrolling (set-based),
    so control members count as converted too although they get no steps."""
    result = session.execute(sa.text("""
        UPDATE journey_enrollments e SET state = 'converted', finished_at = coalesce(e.finished_at, :as_of),
                                         next_run_at = NULL
        FROM members m, journey_versions v, journeys j
        WHERE m.id = e.member_id AND v.journey_id = e.journey_id AND v.version = e.version AND j.id = e.journey_id
          AND v.goal = 'purchase' AND j.trigger <> 'care.date'
          AND e.state IN ('active', 'completed', 'lapsed') AND m.last_purchase_at > e.enrolled_at
          -- a welcome whose first step has not run yet is left to the run, which sends that step first
          AND NOT (j.trigger = 'member.joined' AND e.state = 'active' AND e.step_index = 0)
          AND m.last_purchase_at <= :as_of
        RETURNING e.id"""), {"as_of": as_of})
    converted = list(result.scalars())
    record_converted_events(session, enrollment_ids=converted, now=as_of)
    return len(converted)


JOURNEY_CONVERTED_SQL = """
INSERT INTO domain_events (kind, member_id, payload, occurred_at, dedupe_key)
SELECT 'journey.converted', e.member_id,
       jsonb_build_object('journey_id', e.journey_id, 'journey', j.key, 'version', e.version, 'enrollment_id', e.id,
                          'control', e.control),
       :now, 'journey.converted:' || e.id
FROM journey_enrollments e JOIN journeys j ON j.id = e.journey_id
WHERE e.id = ANY(:ids) AND e.state = 'converted'
ORDER BY e.id
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
"""


def record_converted_events(session: Session, *, enrollment_ids: list[int], now: datetime) -> None:
    """``journey.converted`` for enrollments that converted in this transaction, once per enrollment
    (``dedupe_key``): a control member's conversion is an event too (it measures the journey)."""
    if enrollment_ids:
        session.execute(sa.text(JOURNEY_CONVERTED_SQL), {"ids": enrollment_ids, "now": now})


def journey_report(session: Session, *, journey_id: int) -> dict[str, Any]:
    """Enrolled, control, sent, deferred, suppressed by reason, conversions and uplift with a 95% interval."""
    if session.get(Journey, journey_id) is None:
        raise NotFound(f"journey {journey_id} not found", code="journey_not_found")
    row = session.execute(sa.text("""
        SELECT count(*) AS enrolled, count(*) FILTER (WHERE control) AS control,
               count(*) FILTER (WHERE NOT control AND state = 'converted') AS treatment_converted,
               count(*) FILTER (WHERE control AND state = 'converted') AS control_converted
        FROM journey_enrollments WHERE journey_id = :j"""), {"j": journey_id}).mappings().one()
    steps = session.execute(sa.text("""
        SELECT x.outcome, t.status,
               unnest(CASE WHEN x.outcome = 'rejected' THEN x.reasons ELSE ARRAY[NULL] END) AS reason
        FROM journey_step_executions x JOIN journey_enrollments e ON e.id = x.enrollment_id
        LEFT JOIN touches t ON t.id = x.touch_id WHERE e.journey_id = :j"""), {"j": journey_id}).all()
    suppressed: dict[str, int] = {}
    for outcome, status, reason in steps:
        if outcome == "rejected" and reason:
            suppressed[reason] = suppressed.get(reason, 0) + 1
        if status == "suppressed":
            suppressed["suppressed_at_send"] = suppressed.get("suppressed_at_send", 0) + 1
    treated = row["enrolled"] - row["control"]
    uplift = conversion_uplift(treatment_converted=row["treatment_converted"], treatment_size=treated,
                               control_converted=row["control_converted"], control_size=row["control"])
    return {"journey_id": journey_id, "enrolled": row["enrolled"], "control": row["control"],
            "sent": sum(1 for _, status, _ in steps if status == "sent"),
            "deferred": sum(1 for outcome, _, _ in steps if outcome == "deferred"),
            "suppressed": suppressed,
            "converted": {"treatment": row["treatment_converted"], "control": row["control_converted"]},
            "uplift": {"treatment_rate": uplift.treatment_rate, "control_rate": uplift.control_rate,
                       "uplift": uplift.uplift, "ci95": [uplift.ci_low, uplift.ci_high]}}


