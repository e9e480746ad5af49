"""Call-center use cases: the member in one look, agents' notes, interest clues."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.campaigns import service as campaigns
from domain.contact_policy import service as gate
from domain.contact_policy.rules import (
    COMPLAINT_COOLDOWN_SQL,
    Purpose,
    caps_full_sql,
    complaint_cooldown_params,
    decide,
    policy_from_settings,
)
from domain.crm.models import AgentNote, CallList, CallListStrategy, CallOutcome, InterestEvent, Lead
from domain.crm.rules import CallListAudience, check_call_list_audience
from domain.errors import Forbidden, InvalidInput, NotFound, PolicyRefused
from domain.exports.rules import safe_cell_sql
from domain.lifecycle import service as lifecycle
from domain.members import service as members
from domain.members.models import ConsentStatus, ContactChannel, Member
from domain.members.rules import dormant_from, mask_phone_sql, visible_contact_details
from domain.organisations import service as organisations
from domain.paging import Page, keyset_page
from domain.points import service as points
from domain.rebates.rules import COUPON_STATE_SQL
from domain.scores import service as scores
from domain.settings import get_settings
from domain.tiers import service as tiers
from domain.tiers.rules import QUALIFYING_SPEND_SQL, SPEND_WINDOW_SQL, qualifying_spend
from domain.touchpoints import service as touchpoints


def add_note(session: Session, *, member_id: int, agent_id: str, fields: dict[str, Any], text: str,
             now: datetime) -> AgentNote:
    """Record what an agent learned, with who and when."""
    members.get_member(session, member_id=member_id)
    note = AgentNote(member_id=member_id, agent_id=agent_id, fields=fields, text=text, created_at=now)
    session.add(note)
    session.flush()
    return note


def record_interest(session: Session, *, member_id: int, product: str, source: str, at: datetime) -> InterestEvent:
    """A clue that the member wants a product; call lists dial such members first."""
    members.get_member(session, member_id=member_id)
    event = InterestEvent(member_id=member_id, product=product, source=source, at=at)
    session.add(event)
    session.flush()
    return event


def notes_of(session: Session, *, member_id: int, limit: int = 10) -> list[AgentNote]:
    return list(session.exec(select(AgentNote).where(AgentNote.member_id == member_id)
                             .order_by(col(AgentNote.id).desc()).limit(limit)))


# The whole lookup in ONE statement: the member by one identity key, the access-log entry of the read, and
# everything the agent needs while the phone rings (twenty ORM round trips cost more than the whole answer:
# docs/benchmarks.md). When the entry is the only write, ``set_config`` makes its commit skip the wait for
# the disk (``LOYALTY_ACCESS_LOG_DURABLE_COMMIT``). The composition is shared with the per-concept reads
# (tier_view, compose_balance, compose_facts, channel_for), so the rules live once.
LOOKUP_SQL = """
WITH m AS (
  SELECT * FROM members WHERE {key_column} = %(key)s
), logged AS (
  INSERT INTO access_log (api_key_name, agent_id, staff_id, member_id, action, reason, at)
  SELECT %(log_key_name)s, %(log_agent_id)s, %(log_staff_id)s::integer, m.id, %(log_action)s, %(log_reason)s,
         %(now)s::timestamptz
  FROM m WHERE %(log)s
  RETURNING member_id
)
SELECT m.*,
  CASE WHEN %(log)s AND %(async_commit)s THEN set_config('synchronous_commit', 'off', true) END AS async_commit,
  (SELECT count(*) FROM logged) AS logged,{organisation_columns},
  (SELECT json_agg(json_build_array(occurred_at, amount_fen - refunded_fen)) FROM orders
    WHERE member_id = m.id AND {in_spend_window}) AS window_orders,
  (SELECT below_since FROM member_tier_status WHERE member_id = m.id) AS below_since,
  (SELECT json_build_array(available, pending, debt) FROM points_accounts WHERE member_id = m.id) AS account,
  (SELECT json_build_array(coalesce(sum(remaining), 0), min(expires_at)) FROM points_lots
    WHERE member_id = m.id AND state = 'available' AND remaining > 0 AND expires_at <= %(horizon)s::timestamptz
  ) AS expiring,
  (SELECT json_agg(c) FROM (SELECT code, value_fen, expires_at, redeemed_at, voided_at, {coupon_state} AS state
    FROM coupons cp WHERE member_id = m.id ORDER BY id DESC LIMIT 10) c) AS coupons,
  (SELECT json_agg(o) FROM (SELECT order_id, amount_fen, refunded_fen, channel, occurred_at FROM orders
    WHERE member_id = m.id ORDER BY occurred_at DESC, id DESC LIMIT 5) o) AS recent_orders,
  (SELECT json_agg(t) FROM (SELECT id, channel, purpose, template, decision, status, reasons, requested_at, sent_at
    FROM touches WHERE member_id = m.id ORDER BY id DESC LIMIT 10) t) AS recent_contacts,
  (SELECT json_agg(json_build_array(channel, purpose, send_at)) FROM touches
    WHERE member_id = m.id AND status = ANY(%(counted_statuses)s) AND send_at >= %(cap_since)s::timestamptz
    AND send_at <= %(cap_until)s::timestamptz) AS counted,
  (SELECT json_agg(c) FROM (SELECT id, category, opened_at FROM complaints
    WHERE member_id = m.id AND resolved_at IS NULL ORDER BY id DESC) c) AS open_complaints,
  (SELECT max(opened_at) FROM complaints WHERE member_id = m.id) AS last_complaint,
  (SELECT json_object_agg(channel, status) FROM member_consents WHERE member_id = m.id) AS consents,
  (SELECT json_object_agg(channel, reason) FROM member_channel_reachability
    WHERE member_id = m.id AND NOT reachable) AS unreachable,
  (SELECT json_agg(n) FROM (SELECT agent_id, fields, text, created_at FROM agent_notes
    WHERE member_id = m.id ORDER BY id DESC LIMIT 10) n) AS notes,
  (SELECT json_agg(j) FROM (SELECT j.key, j.name, e.step_index, e.next_run_at, e.control
    FROM journey_enrollments e JOIN journeys j ON j.id = e.journey_id
    WHERE e.member_id = m.id AND e.state = 'active' ORDER BY e.enrolled_at DESC LIMIT 10) j) AS active_journeys,
  {channel_scores} AS channel_scores,
  {top_channel} AS top_channel,
  {lifecycle} AS lifecycle
FROM m
"""
# The qualifying-spend window is the tier rule's own SQL (tiers.rules.SPEND_WINDOW_SQL), its binds in
# psycopg's style: this statement also runs on the async hot path, which speaks psycopg directly.
# The organisations' piece (group customers) is written for a bound ``:m``; here the member is ``m.id``.
LOOKUP_SQL = LOOKUP_SQL.replace("{coupon_state}", COUPON_STATE_SQL.format(c="cp", now="%(now)s::timestamptz"))
LOOKUP_SQL = LOOKUP_SQL.replace("{in_spend_window}", SPEND_WINDOW_SQL.format(orders="orders").replace(
    ":spend_since", "%(spend_since)s").replace(":spend_until", "%(spend_until)s")).replace(
    "{organisation_columns}", re.sub(r"(?<![:\w]):m\b", "m.id", organisations.CRM_PICTURE_COLUMNS).rstrip()).replace(
    "{channel_scores}", scores.SCORES_SQL.format(member_id="m.id")).replace(
    "{top_channel}", scores.TOP_CHANNEL_SQL.format(member_id="m.id").replace(
        ":score_months", "%(score_months)s")).replace(
    "{lifecycle}", lifecycle.LIFECYCLE_SQL.format(member_id="m.id"))
_LOOKUP_BY = {column: LOOKUP_SQL.replace("{key_column}", column)
              for column in (*members.KEY_COLUMNS.values(), "id")}


@dataclass(frozen=True)
class AccessRecord:
    """Who reads whose personal data and why: the access-log entry the lookup writes with its read."""

    api_key_name: str | None
    agent_id: str | None
    reason: str
    staff_id: int | None = None
    action: str = "crm.lookup"


def lookup_statement(*, column: str, key: Any, access: AccessRecord | None,
                     now: datetime) -> tuple[str, dict[str, Any]]:
    """``LOOKUP_SQL`` for a member by ``column`` (an identity key column or ``id``) and its parameters."""
    phone, marketing = ContactChannel.PHONE, Purpose.MARKETING
    # The member's tier is read by the same statement, so the cap window is the widest any tier has: touches
    # outside a cap's own window do not count against it (the gate's rules look at each cap's window).
    window = gate.widest_cap_window(phone, marketing) or (timedelta(0), timedelta(0))
    return _LOOKUP_BY[column], {
        "key": key, "now": now, **tiers.window_params(now), "horizon": points.expiring_horizon(now),
        "cap_since": now - window[0], "cap_until": now + window[1],
        "counted_statuses": [status.value for status in touchpoints.COUNTED], **scores.piece_params(),
        "log": access is not None, "async_commit": not get_settings().access_log_durable_commit,
        "log_key_name": access.api_key_name if access else None, "log_agent_id": access.agent_id if access else None,
        "log_staff_id": access.staff_id if access else None,
        "log_action": access.action if access else None, "log_reason": access.reason[:200] if access else None}


def lookup_outcome(row: Mapping[Any, Any] | None, *, unmasked: bool, now: datetime,
                   details: dict[str, Any]) -> dict[str, Any]:
    """The picture from ``LOOKUP_SQL``'s row, or NotFound when nobody holds the key."""
    if row is None:
        raise NotFound("no member with that key", code="member_not_found", details=details)
    member = members.member_from_row(row)
    return compose_picture(member, row, unmasked=unmasked, now=now)


def lookup_picture(session: Session, *, phone: str | None = None, openid: str | None = None,
                   code: str | None = None, access: AccessRecord | None, unmasked: bool, now: datetime
                   ) -> dict[str, Any]:
    """The member holding one identity key, their whole picture and the access-log entry, in one statement."""
    column, key = members.identity_key(phone=phone, openid=openid, code=code)
    session.flush()
    sql, params = lookup_statement(column=column, key=key, access=access, now=now)
    row = session.connection().exec_driver_sql(sql, params).mappings().first()
    return lookup_outcome(row, unmasked=unmasked, now=now,
                          details={k: v for k, v in (("phone", phone), ("openid", openid), ("code", code)) if v})


def member_picture(session: Session, *, member: Member, unmasked: bool, now: datetime) -> dict[str, Any]:
    """Everything an agent needs about a member already in hand (no access-log entry: the caller logs)."""
    session.flush()
    sql, params = lookup_statement(column="id", key=member.id, access=None, now=now)
    row = session.connection().exec_driver_sql(sql, params).mappings().one()
    return compose_picture(member, row, unmasked=unmasked, now=now)


def _at(value: Any) -> datetime | None:
    """A timestamp out of json_build_object (PostgreSQL writes ISO 8601 with the offset)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _with_times(rows: list[dict[str, Any]] | None, *fields: str) -> list[dict[str, Any]]:
    return [{**r, **{f: _at(r.get(f)) for f in fields}} for r in rows or []]


def compose_picture(member: Member, row: Mapping[Any, Any], *, unmasked: bool, now: datetime) -> dict[str, Any]:
    """The lookup's answer from the member and the facts ``LOOKUP_SQL`` read beside it."""
    assert member.id is not None
    phone, marketing = ContactChannel.PHONE, Purpose.MARKETING
    window_orders = [(_at(o[0]), int(o[1])) for o in row["window_orders"] or []]
    tier = tiers.tier_view(tier=member.tier, spend=qualifying_spend(
                               [(at, amount) for at, amount in window_orders if at is not None], now=now,
                               months=get_settings().tier_window_months),
                           below_since=row["below_since"],
                           window_orders=[(at, amount) for at, amount in window_orders if at is not None],
                           history=[], now=now)
    available, pending, debt = row["account"] or (0, 0, 0)
    expiring, first_expiry = row["expiring"]
    balance = points.compose_balance(member_id=member.id, available=available, pending=pending, debt=debt,
                                     expiring=int(expiring), first_expiry=_at(first_expiry))
    consents: dict[str, str] = row["consents"] or {}
    unreachable: dict[str, str] = row["unreachable"] or {}
    counted = [(ch, pu, at) for ch, pu, at in ((c[0], c[1], _at(c[2])) for c in row["counted"] or [])
               if at is not None]
    verdict = decide(facts=gate.compose_facts(
        member, phone, marketing, counted=counted,
        consent=consents.get(phone.value), unreachable=unreachable.get(phone.value),
        last_complaint=row["last_complaint"],
        account_do_not_contact=next((o["name"] for o in row["organisations"] or [] if o["do_not_contact"]), None)),
        channel=phone, purpose=marketing,
        policy=policy_from_settings(get_settings()), now=now)
    shown_phone, shown_email = visible_contact_details(phone=member.phone, email=member.email, unmasked=unmasked)
    return {
        "member": {
            "id": member.id, "member_code": member.member_code, "name": member.name,
            "phone": shown_phone, "phone_masked": not unmasked,
            "email": shown_email, "wechat_linked": member.wechat_openid is not None,
            "birthday": member.birthday, "gender": member.gender, "city": member.city, "timezone": member.timezone,
            "status": member.status, "tags": member.tags, "source_channel": member.source_channel,
            "source_campaign": member.source_campaign, "joined_at": member.joined_at,
            "last_purchase_at": member.last_purchase_at, "assigned_rep": member.assigned_rep,
            # For an active member: when they turn dormant and enter reactivation if they buy nothing more.
            "dormant_from": dormant_from(last_purchase_at=member.last_purchase_at, joined_at=member.joined_at,
                                         days=get_settings().dormancy_days) if member.status == "active" else None,
            "preferred_channel": member.preferred_channel,
            "message_channel": gate.channel_for(member, consents=consents, unreachable=set(unreachable),
                                                scores=row["channel_scores"]),
            "top_channel": row["top_channel"],
            "lifecycle_stage": row["lifecycle"]["stage"],
            "churn_warning": row["lifecycle"]["churn"],
        },
        "tier": {"tier": tier.tier, "spend_fen": tier.spend_fen, "next_tier": tier.next_tier,
                 "missing_fen": tier.missing_fen, "safe_until": tier.safe_until},
        # The tier the member is served at and its source (own, organisation X, family of Y).
        "treatment": organisations.treatment_from_row(own_tier=member.tier, row=row["shared_treatment"]).as_dict(),
        "organisations": row["organisations"] or [],
        "family": _with_times(row["family"], "consented_at"),
        "points": {k: v for k, v in asdict(balance).items() if k != "member_id"},
        "coupons": _with_times(row["coupons"], "expires_at", "redeemed_at", "voided_at"),
        "recent_orders": _with_times(row["recent_orders"], "occurred_at"),
        "recent_contacts": _with_times(row["recent_contacts"], "requested_at", "sent_at"),
        "open_complaints": _with_times(row["open_complaints"], "opened_at"),
        "consents": {ContactChannel(k): ConsentStatus(v) for k, v in consents.items()},
        "unreachable_channels": {ContactChannel(k): v for k, v in unreachable.items()},
        "notes": _with_times(row["notes"], "created_at"),
        "active_journeys": _with_times(row["active_journeys"], "next_run_at"),
        "may_pitch_by_phone": {"verdict": verdict.verdict, "reasons": list(verdict.reasons),
                               "next_allowed_at": verdict.send_at if verdict.verdict == "deferred"
                               else verdict.next_allowed_at},
    }


# --- outbound call lists ---------------------------------------------------------------------------

DEFAULT_WEIGHTS = {"value": 1.0, "churn": 0.5, "loyalty": 0.5, "lookalike": 1.0}
OUTCOMES = ("reached", "no_answer", "wrong_number", "accepted", "declined", "callback", "do_not_call")


def create_call_list(session: Session, *, name: str, product: str, purpose: str, audience: dict[str, Any],
                     weights: dict[str, float], interest_days: int, recall_hours: int, agent_capacity: int,
                     now: datetime, strategy: CallListStrategy = CallListStrategy.WEIGHTED) -> CallList:
    """Define an outbound call campaign (nothing is extracted yet). The churn strategy rescues the at-risk:
    its audience is the churn warning's at-risk list (within the list's own filters), highest risk first."""
    strategy = CallListStrategy(strategy)
    check_call_list_audience(audience)
    organisations.audience_condition(member_column="m.id", audience=audience)  # refuse bad filters now
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise InvalidInput("unknown strategy weights", code="unknown_weights", details={"weights": sorted(unknown)})
    if strategy == CallListStrategy.CHURN and audience.get("at_risk") is False:
        raise InvalidInput("the churn strategy calls the at-risk list; at_risk false contradicts it",
                           code="invalid_audience", details={"strategy": strategy.value})
    call_list = CallList(name=name, product=product, purpose=purpose, audience=audience, strategy=strategy.value,
                         weights={**DEFAULT_WEIGHTS, **weights}, interest_days=interest_days,
                         recall_hours=recall_hours, agent_capacity=agent_capacity, created_at=now)
    session.add(call_list)
    session.flush()
    return call_list


def get_call_list(session: Session, *, call_list_id: int) -> CallList:
    call_list = session.get(CallList, call_list_id)
    if call_list is None:
        raise NotFound(f"call list {call_list_id} not found", code="call_list_not_found")
    return call_list


# One statement: the audience, every exclusion with its reason (the gate's phone rules, set-based, from the
# same settings), the strategies' scores, and the leads. Members who asked about the product rank first.
EXTRACT_SQL = """
WITH audience AS (
    SELECT m.id, m.tier, m.city, m.joined_at, m.last_purchase_at, m.phone
    FROM members m
    WHERE {audience_condition}
), classified AS (
    SELECT a.*,
      CASE
        WHEN a.phone IS NULL THEN 'no_phone'
        WHEN EXISTS (SELECT 1 FROM member_channel_reachability r
                     WHERE r.member_id = a.id AND r.channel = 'phone' AND NOT r.reachable) THEN 'channel_unreachable'
        WHEN {complaint_cooldown} THEN 'complaint'
        WHEN NOT :service AND {account_do_not_contact} THEN 'account_do_not_contact'
        WHEN (SELECT mc.status FROM member_consents mc WHERE mc.member_id = a.id AND mc.channel = 'phone') = 'opted_out'
          THEN 'consent_opted_out'
        WHEN :marketing AND (SELECT mc.status FROM member_consents mc
                             WHERE mc.member_id = a.id AND mc.channel = 'phone') IS DISTINCT FROM 'granted'
          THEN 'consent_missing'
        WHEN :marketing AND a.joined_at > :onboarding_since THEN 'onboarding_window'
        ELSE {caps_full}
      END AS excluded
    FROM audience a
), buyers AS (
    SELECT DISTINCT o.member_id FROM orders o
    WHERE o.items @> jsonb_build_array(jsonb_build_object('product', CAST(:product AS text)))
), segments AS (
    SELECT m.tier, m.city, avg((b.member_id IS NOT NULL)::int) AS buy_rate
    FROM members m LEFT JOIN buyers b ON b.member_id = m.id GROUP BY m.tier, m.city
), scored AS (
    SELECT c.id,
      (SELECT max(i.at) FROM interest_events i
       WHERE i.member_id = c.id AND i.product = :product AND i.at > :interest_since) AS asked_at,
      {qualifying_spend} AS spend,
      extract(epoch FROM (:as_of - coalesce(c.last_purchase_at, c.joined_at))) AS idle,
      extract(epoch FROM (:as_of - c.joined_at)) AS tenure,
      coalesce(s.buy_rate, 0) AS lookalike,
      coalesce(churn.risk, 0) AS risk, churn.cohort
    FROM classified c LEFT JOIN segments s ON s.tier = c.tier AND s.city IS NOT DISTINCT FROM c.city
    LEFT JOIN LATERAL ({churn_warning}) churn ON true
    WHERE c.excluded IS NULL
), ranked AS (
    SELECT id, asked_at, risk, cohort,
      CASE WHEN :churn_strategy THEN percent_rank() OVER (ORDER BY risk)
           ELSE :w_value * percent_rank() OVER (ORDER BY spend) + :w_churn * percent_rank() OVER (ORDER BY risk)
                + :w_loyalty * percent_rank() OVER (ORDER BY tenure)
                + :w_lookalike * percent_rank() OVER (ORDER BY lookalike) END AS score,
      percent_rank() OVER (ORDER BY spend) AS value_rank
    FROM scored
), inserted AS (
    INSERT INTO leads (call_list_id, member_id, priority, band, reason, state, recalls)
    SELECT :list_id, id,
      CASE WHEN :churn_strategy THEN risk ELSE score END + CASE WHEN asked_at IS NOT NULL THEN 1000 ELSE 0 END,
      CASE WHEN asked_at IS NOT NULL THEN 1 WHEN score >= :half_weights THEN 2 ELSE 3 END,
      CASE WHEN asked_at IS NOT NULL THEN 'asked about ' || :product || ' on ' || to_char(asked_at, 'YYYY-MM-DD')
           WHEN :churn_strategy THEN 'churn risk ' || round(CAST(risk AS numeric), 2) || ' (' || cohort || ')'
           ELSE 'score ' || round(CAST(score AS numeric), 2) || ' (value top ' ||
                round(CAST(100 - value_rank * 100 AS numeric)) || '%)' END,
      'pooled', 0
    FROM ranked
    ON CONFLICT (call_list_id, member_id) DO NOTHING
    RETURNING band
)
SELECT 'excluded' AS kind, excluded AS key, count(*) AS n FROM classified WHERE excluded IS NOT NULL GROUP BY excluded
UNION ALL
SELECT 'band', CAST(band AS text), count(*) FROM inserted GROUP BY band
"""


def extract_leads(session: Session, *, call_list_id: int, now: datetime) -> dict[str, dict[str, int]]:
    """Build the list's leads with priorities and reasons; returns counts by band and exclusions by reason.
    Re-extracting adds newcomers and never duplicates a lead."""
    call_list = get_call_list(session, call_list_id=call_list_id)
    settings = get_settings()
    policy = policy_from_settings(settings)
    audience, weights = call_list.audience, call_list.weights
    # The gate's own rules in their SQL form: the complaint cool-down, and the caps a call now would break.
    caps_full, cap_params = caps_full_sql(policy, channel=ContactChannel.PHONE.value,
                                          purpose=Purpose(call_list.purpose), member_id="a.id", tier="a.tier")
    churn = call_list.strategy == CallListStrategy.CHURN
    # The campaigns' audience SQL (one form of the shared filters); a list reaches active and dormant members
    # unless it names statuses, and the churn strategy's audience is the at-risk list.
    audience_condition, audience_params = campaigns.audience_condition(
        {"statuses": ["active", "dormant"], **audience, **({"at_risk": True} if churn else {})}, now,
        model=CallListAudience)
    sql = EXTRACT_SQL.replace("{complaint_cooldown}", COMPLAINT_COOLDOWN_SQL.format(member_id="a.id")).replace(
        "{caps_full}", caps_full).replace("{qualifying_spend}", QUALIFYING_SPEND_SQL.format(member_id="c.id")).replace(
        "{audience_condition}", audience_condition).replace(
        "{churn_warning}", lifecycle.CHURN_WARNING_SQL.format(member_id="c.id")).replace(
        "{account_do_not_contact}", organisations.DO_NOT_CONTACT_SQL.format(member_id="a.id"))
    rows = session.execute(sa.text(sql), {
        **audience_params, "service": call_list.purpose == "service", **cap_params, "cap_at": now,
        **complaint_cooldown_params(now=now, policy=policy),
        "list_id": call_list.id, "product": call_list.product, "as_of": now,
        "marketing": call_list.purpose == "marketing",
        "onboarding_since": now - policy.onboarding,
        "interest_since": now - timedelta(days=call_list.interest_days), **tiers.window_params(now),
        "churn_strategy": churn, "w_value": weights["value"], "w_churn": weights["churn"],
        "w_loyalty": weights["loyalty"], "w_lookalike": weights["lookalike"],
        # The band boundary: half the score's range (a percent rank for the churn strategy).
        "half_weights": 0.5 if churn else sum(weights.values()) / 2}).all()
    counts: dict[str, dict[str, int]] = {"leads_by_band": {}, "excluded": {}}
    for kind, key, n in rows:
        counts["leads_by_band" if kind == "band" else "excluded"][key] = int(n)
    # Each extraction classifies the whole audience again: its counts replace the last ones (a member
    # excluded twice is one exclusion, not two).
    call_list.exclusions = counts["excluded"]
    call_list.extracted_at = now
    session.add(call_list)
    return counts


@dataclass(frozen=True)
class LeadPull:
    """What ``next-lead`` answers: the lead handed out (or none), and the leads passed over because the gate
    would not let a call through now, by reason, with the earliest time one of them becomes callable."""

    lead: Lead | None
    skipped: int
    skipped_by_reason: dict[str, int]
    next_callable_at: datetime | None


PULL_BATCH = 100
PULL_MAX_EXAMINED = 2_000
"""A pull examines the pool in dialling order, a batch at a time, up to this many leads (a list at night is
mostly in quiet hours: the answer then says so rather than scanning for ever)."""


def pull_next_lead(session: Session, *, call_list_id: int, agent_id: str, now: datetime) -> LeadPull:
    """Give the agent their next lead that may be called now: their own members first, then by priority. The
    contact gate decides who may be called (quiet hours in the member's zone, caps, cool-down, consent,
    onboarding — ``gate.evaluate_contacts``, the gate's own decision); leads it holds back stay in the pool and
    are counted by reason. Two agents never get the same lead (the claim locks it, SKIP LOCKED); an agent at
    capacity gets none until they work some."""
    call_list = get_call_list(session, call_list_id=call_list_id)
    held = session.scalar(sa.select(sa.func.count()).select_from(Lead).where(
        col(Lead.call_list_id) == call_list_id, col(Lead.agent_id) == agent_id, col(Lead.state) == "assigned"))
    if (held or 0) >= call_list.agent_capacity:
        raise PolicyRefused(f"agent {agent_id} holds {held} unworked leads", code="agent_at_capacity",
                            details={"capacity": call_list.agent_capacity})
    skipped: dict[str, int] = {}
    passed = 0
    next_at: datetime | None = None
    examined: list[int] = []
    while len(examined) < PULL_MAX_EXAMINED:
        # Read without locking (another agent's claim must not hide a whole batch), then claim one by one.
        batch = session.execute(sa.text("""
            SELECT l.id, l.member_id FROM leads l JOIN members m ON m.id = l.member_id
            WHERE l.call_list_id = :list AND l.state = 'pooled' AND l.id <> ALL(CAST(:seen AS bigint[]))
            ORDER BY (m.assigned_rep IS NOT DISTINCT FROM :agent) DESC, l.priority DESC, l.id
            LIMIT :n"""), {"list": call_list_id, "agent": agent_id, "seen": examined, "n": PULL_BATCH}).all()
        if not batch:
            break
        decisions = gate.evaluate_contacts(session, member_ids=[m for _, m in batch],
                                           channel=ContactChannel.PHONE.value, purpose=call_list.purpose, now=now)
        for lead_id, member_id in batch:
            examined.append(lead_id)
            decision = decisions[member_id]
            if decision.verdict == "approved" and decision.send_at == now:
                claimed = session.execute(sa.text(
                    "SELECT id FROM leads WHERE id = :id AND state = 'pooled' FOR UPDATE SKIP LOCKED"),
                    {"id": lead_id}).first()
                if claimed is None:  # another agent took it a moment ago
                    continue
                lead = session.get(Lead, lead_id)
                assert lead is not None
                session.refresh(lead)
                lead.state, lead.agent_id, lead.assigned_at = "assigned", agent_id, now
                session.add(lead)
                session.flush()
                return LeadPull(lead, passed, skipped, next_at)
            passed += 1
            for reason in decision.reasons:
                skipped[reason] = skipped.get(reason, 0) + 1
            when = decision.send_at if decision.verdict == "deferred" else decision.next_allowed_at
            if when is not None and (next_at is None or when < next_at):
                next_at = when
    return LeadPull(None, passed, skipped, next_at)


def next_lead(session: Session, *, call_list_id: int, agent_id: str, now: datetime) -> Lead | None:
    """The lead ``pull_next_lead`` hands out, without the account of the skipped ones."""
    return pull_next_lead(session, call_list_id=call_list_id, agent_id=agent_id, now=now).lead


def record_call_outcome(session: Session, *, member_id: int, agent_id: str, outcome: str, note: str,
                        callback_at: datetime | None, lead_id: int | None, now: datetime,
                        any_lead: bool = False) -> CallOutcome:
    """Record a call's outcome with the agent's identity. "do_not_call" withdraws phone consent at once;
    "callback" books a phone touch through the contact gate at the asked time. A lead's outcome is recorded
    only by the agent holding it, unless ``any_lead`` (a supervisor)."""
    from domain.members.models import ContactChannel

    if outcome not in OUTCOMES:
        raise InvalidInput(f"unknown outcome {outcome!r}", code="invalid_outcome", details={"outcomes": OUTCOMES})
    if outcome == "callback" and callback_at is None:
        raise InvalidInput("a callback needs callback_at", code="callback_time_required")
    members.get_member(session, member_id=member_id)
    lead = None
    if lead_id is not None:
        lead = session.exec(select(Lead).where(Lead.id == lead_id).with_for_update()).first()
        if lead is None or lead.member_id != member_id:
            raise NotFound(f"lead {lead_id} not found for member {member_id}", code="lead_not_found")
        if lead.agent_id != agent_id and not any_lead:
            raise Forbidden(f"lead {lead_id} is held by another agent", code="lead_not_yours",
                            details={"lead_id": lead_id})
        lead.state, lead.outcome, lead.worked_at = "worked", outcome, now
        session.add(lead)
    record = CallOutcome(member_id=member_id, lead_id=lead_id, agent_id=agent_id, outcome=outcome,
                         callback_at=callback_at, note=note, at=now)
    session.add(record)
    if outcome == "do_not_call":
        members.set_consent(session, member_id=member_id, channel=ContactChannel.PHONE, granted=False,
                            source=f"agent:{agent_id}", now=now)
    if outcome == "callback" and callback_at is not None:
        purpose = "marketing"
        if lead is not None:
            purpose = get_call_list(session, call_list_id=lead.call_list_id).purpose
        gate.request_touch(session, member_id=member_id, channel="phone", purpose=purpose,
                           source=f"callback:{agent_id}", idempotency_key=f"{member_id}:{callback_at.isoformat()}",
                           template="callback", variables={"agent_id": agent_id}, now=now, not_before=callback_at)
    session.flush()
    return record


def recall_leads(session: Session, *, as_of: datetime) -> int:
    """Leads assigned but not worked within their list's recall time return to the pool (set-based)."""
    result = session.execute(sa.text("""
        UPDATE leads l SET state = 'pooled', agent_id = NULL, assigned_at = NULL, recalls = l.recalls + 1
        FROM call_lists c
        WHERE c.id = l.call_list_id AND l.state = 'assigned'
          AND l.assigned_at <= :as_of - make_interval(hours => c.recall_hours)"""), {"as_of": as_of})
    return int(getattr(result, "rowcount", 0) or 0)


def call_list_report(session: Session, *, call_list_id: int) -> dict[str, Any]:
    """Dialled, reached, accepted and conversion by priority band."""
    call_list = get_call_list(session, call_list_id=call_list_id)
    rows = session.execute(sa.text("""
        SELECT band, count(*) AS leads, count(outcome) AS dialled,
               count(*) FILTER (WHERE outcome IN ('reached', 'accepted', 'declined', 'callback', 'do_not_call'))
                 AS reached,
               count(*) FILTER (WHERE outcome = 'accepted') AS accepted
        FROM leads WHERE call_list_id = :list GROUP BY band ORDER BY band"""), {"list": call_list_id}).mappings().all()
    bands = [{**dict(r), "conversion": round(r["accepted"] / r["dialled"], 4) if r["dialled"] else None} for r in rows]
    total = {k: sum(b[k] for b in bands) for k in ("leads", "dialled", "reached", "accepted")}
    return {"call_list_id": call_list_id, "name": call_list.name, "product": call_list.product, **total,
            "excluded": call_list.exclusions, "by_band": bands}


def list_call_lists(session: Session, *, purpose: str | None, cursor: str | None, limit: int) -> Page[CallList]:
    """Call lists, newest first."""
    lists = CallList.__table__.c  # type: ignore[attr-defined]
    query = sa.select(CallList)
    if purpose:
        query = query.where(lists.purpose == purpose)
    return keyset_page(session, query, order_by=[lists.id], cursor=cursor, limit=limit)


def list_leads(session: Session, *, call_list_id: int, state: str | None, band: int | None, agent_id: str | None,
               cursor: str | None, limit: int) -> Page[Lead]:
    """A call list's leads in dialling order (highest priority first)."""
    get_call_list(session, call_list_id=call_list_id)
    leads = Lead.__table__.c  # type: ignore[attr-defined]
    query = sa.select(Lead).where(leads.call_list_id == call_list_id)
    if state:
        query = query.where(leads.state == state)
    if band is not None:
        query = query.where(leads.band == band)
    if agent_id:
        query = query.where(leads.agent_id == agent_id)
    return keyset_page(session, query, order_by=[leads.priority, leads.id], cursor=cursor, limit=limit)


def leads_export_query(*, call_list_id: int, unmasked: bool) -> sa.Select[Any]:
    """A call list's leads for a dialer, in dialling order: who, how to reach them (phone masked unless
    ``unmasked``), their band, priority and why they are on the list, their own tier and the one served at."""
    leads, m = Lead.__table__.c, Member.__table__.c  # type: ignore[attr-defined]
    return (sa.select(leads.id.label("lead_id"), m.member_code, safe_cell_sql(m.name).label("name"),
                      (m.phone if unmasked else mask_phone_sql(m.phone)).label("phone"), m.timezone,
                      leads.band, sa.func.round(sa.cast(leads.priority, sa.Numeric), 4).label("priority"),
                      safe_cell_sql(leads.reason).label("reason"), leads.state,
                      safe_cell_sql(leads.agent_id).label("agent_id"), m.tier,
                      # the tier the agent serves them at (an account's or a relative's may be better than their own)
                      sa.literal_column(organisations.served_tier_sql("members")).label("served_tier"),
                      safe_cell_sql(m.city).label("city"))
            .join(Member, m.id == leads.member_id)
            .where(leads.call_list_id == call_list_id).order_by(leads.priority.desc(), leads.id.desc()))


def lead_member_ids(*, call_list_id: int) -> sa.Select[Any]:
    """The members a call list's export shows (for the access log, set-based)."""
    leads = Lead.__table__.c  # type: ignore[attr-defined]
    return sa.select(leads.member_id).where(leads.call_list_id == call_list_id)


def call_list_progress_by_agent(session: Session, *, call_list_id: int) -> list[dict[str, Any]]:
    """Per agent: leads held now, dialled, reached, accepted and the hit rate (accepted / dialled)."""
    get_call_list(session, call_list_id=call_list_id)
    rows = session.execute(sa.text("""
        SELECT agent_id, count(*) FILTER (WHERE state = 'assigned') AS holding, count(outcome) AS dialled,
               count(*) FILTER (WHERE outcome IN ('reached', 'accepted', 'declined', 'callback', 'do_not_call'))
                 AS reached,
               count(*) FILTER (WHERE outcome = 'accepted') AS accepted
        FROM leads WHERE call_list_id = :list AND agent_id IS NOT NULL GROUP BY agent_id ORDER BY agent_id"""),
        {"list": call_list_id}).mappings().all()
    return [{**dict(r), "hit_rate": round(r["accepted"] / r["dialled"], 4) if r["dialled"] else None} for r in rows]


def recall_agent_leads(session: Session, *, call_list_id: int, agent_id: str | None) -> int:
    """A supervisor takes back unworked leads now (one agent's, or everyone's): they return to the pool."""
    get_call_list(session, call_list_id=call_list_id)
    result = session.execute(sa.text("""
        UPDATE leads SET state = 'pooled', agent_id = NULL, assigned_at = NULL, recalls = recalls + 1
        WHERE call_list_id = :list AND state = 'assigned' AND (CAST(:agent AS text) IS NULL OR agent_id = :agent)"""),
        {"list": call_list_id, "agent": agent_id})
    return int(getattr(result, "rowcount", 0) or 0)


def get_lead(session: Session, *, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found", code="lead_not_found")
    return lead
