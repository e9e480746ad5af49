"""The contact gate: decide, record and queue every touch; complaints."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import telemetry
from domain.contact_policy.models import Complaint
from domain.contact_policy.rules import (
    ADDRESS_FIELDS,
    Decision,
    Facts,
    Purpose,
    Verdict,
    channel_choice_sql,
    choose_channel,
    decide,
    decision_sql,
    has_address,
    in_complaint_cooldown,
    policy_from_settings,
)
from domain.db import among, array_literal
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events.service import record_event
from domain.members.models import ContactChannel, Member, MemberChannelReachability, MemberConsent
from domain.members.service import consents_of, get_member, get_members, unreachable_channels
from domain.organisations import service as organisations
from domain.paging import Page, keyset_page
from domain.scores.service import score_source
from domain.settings import get_settings
from domain.templates import service as templates
from domain.templates.rules import render
from domain.tiers.rules import ORDER as TIER_ORDER
from domain.touchpoints import service as touchpoints
from domain.touchpoints.models import Touch, TouchStatus


def _address(member: Member, channel: ContactChannel) -> dict[str, str]:
    column = ADDRESS_FIELDS[channel.value]
    value = getattr(member, column) if column else str(member.id)
    key = {ContactChannel.WECHAT: "openid", ContactChannel.EMAIL: "email", ContactChannel.APP: "member_id"}.get(
        channel, "phone")
    return {key: value} if value else {}


def channel_scores() -> sa.FromClause | None:
    """Where channel preference scores come from (member_id, channel, score): the scores concept's source.
    ``choose_channels`` ranks consented, reachable channels by it when the member chose none themselves."""
    return score_source().subquery("channel_scores")


def channel_for(member: Member, *, consents: Mapping[str, str], unreachable: Collection[str],
                scores: Mapping[str, float] | None = None) -> str | None:
    """The channel-choice rule for one member whose consents and unreachable channels were already read
    (the CRM lookup's one statement)."""
    row = {column: getattr(member, column) for column in ADDRESS_FIELDS.values() if column}
    order = get_settings().channel_order
    return choose_channel(preferred=member.preferred_channel, order=order, scores=scores,
                          consented={c for c, status in consents.items() if status == "granted"},
                          reachable={c for c in order if has_address(c, row) and c not in unreachable})


def choose_channels(session: Session, *, member_ids: Sequence[int], order: Sequence[str] | None = None,
                    use_scores: bool = True) -> dict[int, str | None]:
    """The channel each member is talked to on when a step or campaign says ``preferred`` (None: no
    consented, reachable channel; the caller reports the member unreachable). One statement for the batch,
    the channel-choice rule's own SQL form. ``order`` and ``use_scores`` (default: the configured order, with
    scores) exist for the campaign-effect benchmark, which runs the same campaign with and without scores."""
    members_table = Member.__table__  # type: ignore[attr-defined]
    chosen = channel_choice_sql(members_table, order=order or get_settings().channel_order,
                                scores=channel_scores() if use_scores else None)
    rows = session.execute(sa.select(members_table.c.id, chosen).where(among(members_table.c.id, list(member_ids))))
    return {int(member_id): channel for member_id, channel in rows}


def last_complaint_at(session: Session, *, member_id: int) -> datetime | None:
    return session.scalar(sa.select(sa.func.max(Complaint.opened_at)).where(col(Complaint.member_id) == member_id))


def cap_window(member: Member, channel: ContactChannel, purpose: Purpose) -> tuple[timedelta, timedelta] | None:
    """How far back and ahead the member's touches count against this channel and purpose's caps."""
    return _tier_cap_window(member.tier, channel, purpose)


def _tier_cap_window(tier: str, channel: ContactChannel, purpose: Purpose) -> tuple[timedelta, timedelta] | None:
    policy = policy_from_settings(get_settings())
    longest = max((c.window for c in policy.caps_for(tier, channel, purpose)), default=None)
    return (longest, longest + policy.max_deferral) if longest is not None else None


def widest_cap_window(channel: ContactChannel, purpose: Purpose) -> tuple[timedelta, timedelta] | None:
    """``cap_window`` for a member whose tier is not known yet: the widest any tier has."""
    windows = [w for w in (_tier_cap_window(t, channel, purpose) for t in TIER_ORDER) if w is not None]
    return max(windows) if windows else None


def compose_facts(member: Member, channel: ContactChannel, purpose: Purpose, *,
                  counted: list[tuple[str, str, datetime]], consent: str | None, unreachable: str | None,
                  last_complaint: datetime | None, account_do_not_contact: str | None = None) -> Facts:
    """The gate's facts from what was read (shared by the gate and the CRM lookup's one statement)."""
    return Facts(member_status=member.status, tier=member.tier, timezone=member.timezone, joined_at=member.joined_at,
                 consent=consent, unreachable=unreachable, has_address=bool(_address(member, channel)),
                 last_complaint_at=last_complaint, planned=_planned(member, channel, purpose, counted),
                 account_do_not_contact=account_do_not_contact)


def _planned(member: Member, channel: ContactChannel, purpose: Purpose,
             counted: Sequence[tuple[str, str, datetime]]) -> dict[str, list[datetime]]:
    """Cap name → the send times of ``counted`` touches (channel, purpose, send_at) that count against it."""
    caps = policy_from_settings(get_settings()).caps_for(member.tier, channel, purpose)
    return {cap.name: [t for ch, pu, t in counted if ch in cap.channels and pu in cap.purposes] for cap in caps}


def _load_facts(session: Session, asks: Sequence[tuple[Member, ContactChannel, Purpose]], now: datetime
                ) -> list[Facts]:
    """Facts for many (member, channel, purpose) at once: one statement per kind of fact for the whole batch."""
    ids = sorted({m.id for m, _, _ in asks if m.id is not None})
    windows = [cap_window(m, ch, pu) for m, ch, pu in asks]
    consents = {(m, str(ch)): str(status) for m, ch, status in session.execute(
        sa.select(MemberConsent.member_id, MemberConsent.channel, MemberConsent.status)  # type: ignore[call-overload]
        .where(among(MemberConsent.member_id, ids)))}
    unreachable = {(m, str(ch)): reason for m, ch, reason in session.execute(
        sa.select(MemberChannelReachability.member_id, MemberChannelReachability.channel,  # type: ignore[call-overload]
                  MemberChannelReachability.reason)
        .where(among(MemberChannelReachability.member_id, ids), col(MemberChannelReachability.reachable).is_(False)))}
    latest = sa.select(Complaint.member_id, sa.func.max(Complaint.opened_at))  # type: ignore[call-overload]
    complaints: dict[int, datetime] = dict(session.execute(
        latest.where(among(Complaint.member_id, ids)).group_by(Complaint.member_id)).all())
    counted: dict[int, list[tuple[str, str, datetime]]] = {}
    spans = [(now - w[0], now + w[1]) for w in windows if w]
    if spans:
        for member_id, channel, purpose, send_at in session.execute(
                sa.select(Touch.member_id, Touch.channel, Touch.purpose, Touch.send_at).where(  # type: ignore[call-overload]
                    among(Touch.member_id, ids), col(Touch.status).in_([s.value for s in touchpoints.COUNTED]),
                    col(Touch.send_at) >= min(a for a, _ in spans), col(Touch.send_at) <= max(b for _, b in spans))):
            counted.setdefault(member_id, []).append((channel, purpose, send_at))
    do_not_contact = organisations.accounts_not_to_contact(session, member_ids=ids)
    facts = []
    for (member, ch, pu), window in zip(asks, windows, strict=True):
        assert member.id is not None
        in_window = ([c for c in counted.get(member.id, []) if now - window[0] <= c[2] <= now + window[1]]
                     if window else [])
        facts.append(compose_facts(member, ch, pu, counted=in_window, consent=consents.get((member.id, ch.value)),
                                   unreachable=unreachable.get((member.id, ch.value)),
                                   last_complaint=complaints.get(member.id),
                                   account_do_not_contact=do_not_contact.get(member.id)))
    return facts


def _parse(channel: str, purpose: str) -> tuple[ContactChannel, Purpose]:
    try:
        return ContactChannel(channel), Purpose(purpose)
    except ValueError as exc:
        raise InvalidInput(f"unknown channel {channel!r} or purpose {purpose!r}", code="invalid_touch",
                           details={"channels": [c.value for c in ContactChannel],
                                    "purposes": [p.value for p in Purpose]}) from exc


def evaluate_contact(session: Session, *, member_id: int, channel: str, purpose: str, now: datetime) -> Decision:
    """Would a touch be allowed now, why not, and when next? Writes nothing."""
    ch, pu = _parse(channel, purpose)
    member = get_member(session, member_id=member_id)
    return decide(facts=_load_facts(session, [(member, ch, pu)], now)[0], channel=ch, purpose=pu,
                  policy=policy_from_settings(get_settings()), now=now)


def evaluate_contacts(session: Session, *, member_ids: Sequence[int], channel: str, purpose: str,
                      now: datetime) -> dict[int, Decision]:
    """The gate's decision for many members at once, writing nothing: the same facts (one statement per kind of
    fact for the whole set) and the same pure ``decide`` as a touch request. Who ``next-lead`` may hand out
    now, and how many of a campaign's audience would get through, are this answer, never a rule of their own."""
    ch, pu = _parse(channel, purpose)
    members = get_members(session, member_ids=sorted(set(member_ids)))
    policy = policy_from_settings(get_settings())
    facts = _load_facts(session, [(m, ch, pu) for m in members], now)
    return {m.id: decide(facts=f, channel=ch, purpose=pu, policy=policy, now=now)  # type: ignore[misc]
            for m, f in zip(members, facts, strict=True)}


@dataclass(frozen=True)
class TouchRequest:
    """One touch asked of the gate: who, on which channel, for what, and the caller's idempotency key."""

    member_id: int
    channel: str
    purpose: str
    source: str
    idempotency_key: str
    template: str
    variables: dict[str, Any]
    not_before: datetime | None = None


def request_touch(session: Session, *, member_id: int, channel: str, purpose: str, source: str,
                  idempotency_key: str, template: str, variables: dict[str, Any], now: datetime,
                  not_before: datetime | None = None) -> tuple[Touch, bool]:
    """Ask the gate for a touch: the decision and its reasons are recorded, and an approved or deferred
    touch enters the outbox. Idempotent by (source, idempotency_key): a replay returns the first decision."""
    return request_touches(session, [TouchRequest(member_id, channel, purpose, source, idempotency_key, template,
                                                  variables, not_before)], now=now)[0]


def request_templated_touch(session: Session, *, member_id: int, channel: str, purpose: str | None, source: str,
                            idempotency_key: str, template: str, variables: dict[str, Any], now: datetime,
                            not_before: datetime | None = None) -> tuple[Touch, bool]:
    """A caller's touch naming a catalogue template: the purpose is the template's (a caller cannot send
    marketing labelled as service), the variables must be exactly the declared ones, and the rendered text
    travels with the touch. A replay returns the first decision."""
    found = templates.resolve(session, key=template, channel=channel, now=now)
    carried = templates.check_touch(found, purpose=purpose, variables=variables)
    return request_touch(session, member_id=member_id, channel=channel, purpose=carried, source=source,
                         idempotency_key=idempotency_key, template=template, now=now, not_before=not_before,
                         variables={**variables, "body": render(found.body, variables)})


_CONTACT_LOCK = "pg_advisory_xact_lock(hashtextextended('contact:' || s.id, 0))"
"""A member's contact lock, over ``s.id``: the one spelling both ways of taking it share."""


def lock_contacts(session: Session, *, member_ids: Collection[int]) -> None:
    """Serialise the gate's decisions for these members until the transaction ends (a transaction-scoped advisory
    lock each, taken in member order so that two batches over the same members cannot deadlock). A caller that
    decides in several calls locks the union first; a lock it already holds is taken again without waiting."""
    session.execute(sa.text(f"SELECT {_CONTACT_LOCK} FROM (SELECT id FROM unnest(CAST(:ids AS bigint[])) AS id "
                            "ORDER BY id) s"), {"ids": array_literal(sorted(set(member_ids)))})


def lock_contacts_sql(member_ids: str) -> str:
    """One row that does what the gate's set-based statement (``request_touches_decided_in_sql``) needs done before
    it starts: the contact locks (``lock_contacts``) of the members ``member_ids`` selects (a query with an ``id``
    column), in member order, and JIT off for the rest of the transaction. A caller that picks its batch in SQL
    runs it in that statement (a campaign batch's claim), one round trip fewer, and tells the gate
    (``already_locked``)."""
    # The slot search's subplans put the estimate past jit_above_cost, and compiling took 150 ms a statement, more
    # than the 2,000 rows it decides: off for the rest of this (short) transaction, set before it is planned.
    return (f"SELECT set_config('jit', 'off', true) AS jit, count({_CONTACT_LOCK}) AS locked "
            f"FROM (SELECT DISTINCT l.id FROM ({member_ids}) l ORDER BY l.id) s")


DECIDED_IN_SQL = """
WITH stored AS (
INSERT INTO touches (member_id, channel, purpose, source, idempotency_key, template, variables, decision, reasons,
                     status, send_at, next_allowed_at, requested_at, attempts)
SELECT m.id, CAST(:gate_channel AS text), CAST(:gate_purpose AS text), CAST(:gate_source AS text), a.idempotency_key,
       CAST(:gate_template AS text), {variables}, d.verdict, d.reasons,
       CASE d.verdict WHEN 'rejected' THEN 'rejected' ELSE 'queued' END, d.send_at, d.next_allowed_at,
       CAST(:gate_now AS timestamptz), 0
FROM unnest(CAST(:gate_ids AS bigint[]), CAST(:gate_keys AS text[])) AS a(member_id, idempotency_key)
JOIN members m ON m.id = a.member_id AND m.id = ANY(CAST(:gate_ids AS bigint[]))  -- by the index, not a hash
LEFT JOIN (SELECT lc.member_id, max(lc.opened_at) AS opened_at FROM complaints lc
           WHERE lc.member_id = ANY(CAST(:gate_ids AS bigint[])) GROUP BY lc.member_id) latest
       ON latest.member_id = m.id
CROSS JOIN LATERAL ({decision}) d
WHERE d.verdict IS NOT NULL
ON CONFLICT (source, idempotency_key) DO NOTHING
RETURNING idempotency_key, member_id, id, decision, reasons){record}
SELECT s.decision, s.reasons, count(*), array_agg(s.idempotency_key) FROM stored s GROUP BY s.decision, s.reasons
"""
"""The gate's common case for a batch: decide (``decision_sql``) and store in one statement. A replay (a touch
already stored under the key) is left alone by ``ON CONFLICT``, not returned, and so goes to the Python gate,
which answers it as a replay; a check of its own (``NOT EXISTS``) read every touch of the source, which grows
with every batch of a campaign. What comes back is one row per distinct (decision, reasons) with the keys
stored under it: the counters and the caller need no more, and 2,000 rows into Python objects and back cost
more than the statement's own work."""


def request_touches_decided_in_sql(session: Session, *, asks: Sequence[tuple[int, str]], channel: str, purpose: str,
                                   source: str, template: str, variables: tuple[str, Mapping[str, Any]],
                                   now: datetime, record: tuple[str, Mapping[str, Any]] | None = None,
                                   already_locked: bool = False) -> set[str]:
    """The common case of ``request_touches`` in one ``INSERT … SELECT``: of the asked (member id, idempotency
    key), those whose decision ``decision_sql`` (the rules' own SQL form) gives — a rejection for the member's state,
    consent, complaint or onboarding, an approval now, a deferral to the earliest slot past quiet hours and full
    caps — are stored with it; returns the idempotency keys stored. Everyone else — a replay, a cap full
    past the deferral horizon — is not written: the caller asks ``request_touches`` for them. A member
    may be asked for once per call (two asks would both see the caps before either). ``variables``: the touch's
    variables as SQL over the members row ``m`` (e.g. ``jsonb_build_object(…)``) and their parameters.
    ``record``: a data-modifying statement (and its parameters) run in the same statement over what was stored,
    the CTE ``stored`` (idempotency_key, member_id, id, decision, reasons) — the caller's own bookkeeping, such as
    a campaign's audience rows, without the rows travelling to Python and back. ``already_locked``: the caller
    ran ``lock_contacts_sql`` for (at least) these members earlier in this transaction, before reading anything
    it decides on; otherwise it is run here."""
    ch, pu = _parse(channel, purpose)
    ids = [member_id for member_id, _ in asks]
    if len(set(ids)) != len(ids):
        raise ValueError("a member may be asked for once per call")
    if not asks:
        return set()
    # Before the statement, so its snapshot sees the last holder's touches, and its plan has no JIT.
    if not already_locked:
        session.execute(sa.text(lock_contacts_sql("SELECT unnest(CAST(:ids AS bigint[])) AS id")),
                        {"ids": array_literal(ids)})
    # The batch's complaints read once (a correlated max() per member scanned the whole small table each time).
    decision, params = decision_sql(policy_from_settings(get_settings()), channel=ch.value, purpose=pu, now=now,
                                    account_do_not_contact=organisations.DO_NOT_CONTACT_SQL,
                                    latest_complaint="latest.opened_at")
    expression, variable_params = variables
    then, record_params = record if record is not None else (None, {})
    statement = DECIDED_IN_SQL.format(variables=expression, decision=decision,
                                      record=f", recorded AS ({then})" if then else "")
    stored = session.execute(sa.text(statement), {
        **variable_params, **record_params, **params, "gate_source": source, "gate_template": template,
        "gate_ids": array_literal(ids), "gate_keys": array_literal([key for _, key in asks])}).tuples().all()
    telemetry.count_gate_decision_groups((verdict, pu.value, ch.value, reasons, int(n))
                                         for verdict, reasons, n, _ in stored)
    return {str(key) for _, _, _, keys in stored for key in keys}


def request_touches(session: Session, requests: Sequence[TouchRequest], *, now: datetime) -> list[tuple[Touch, bool]]:
    """The gate for a batch (a campaign's next few thousand members): each request is decided by the same
    pure rules as a single one, but every read and write is one statement for the whole batch.

    Decisions for one member are serialised by an advisory lock taken for all the batch's members in member
    order (two batches cannot deadlock), so concurrent requests never both take a cap's last slot; a
    member asked for twice in one batch sees the first touch against their caps. Returns (touch, replayed)
    per request, in order."""
    parsed = [_parse(r.channel, r.purpose) for r in requests]
    ids = sorted({r.member_id for r in requests})
    lock_contacts(session, member_ids=ids)
    found = {(t.source, t.idempotency_key): t for t in session.scalars(sa.select(Touch).from_statement(sa.text(
        "SELECT t.* FROM touches t JOIN unnest(CAST(:sources AS text[]), CAST(:keys AS text[])) AS r(source, key) "
        "ON t.source = r.source AND t.idempotency_key = r.key")).params(
            sources=[r.source for r in requests], keys=[r.idempotency_key for r in requests]))}
    members = {m.id: m for m in get_members(session, member_ids=ids)}
    missing = [i for i in ids if i not in members]
    if missing:
        raise NotFound(f"member {missing[0]} not found", code="member_not_found", details={"member_id": missing[0]})
    fresh = [i for i, r in enumerate(requests) if (r.source, r.idempotency_key) not in found]
    facts = dict(zip(fresh, _load_facts(session, [(members[requests[i].member_id], *parsed[i]) for i in fresh], now),
                     strict=True))
    policy = policy_from_settings(get_settings())
    decided: dict[int, list[tuple[str, str, datetime]]] = {}  # this batch's own touches, counted for later ones
    rows: list[dict[str, Any]] = []
    in_batch: dict[tuple[str, str], int] = {}  # (source, key) → its row, so a repeat within the batch replays it
    out: list[tuple[Touch | int, bool]] = []
    for i, request in enumerate(requests):
        ch, pu = parsed[i]
        key = (request.source, request.idempotency_key)
        earlier: Touch | dict[str, Any] | None = found.get(key) or (rows[in_batch[key]] if key in in_batch else None)
        if earlier is not None:
            was = ((earlier["member_id"], earlier["channel"], earlier["purpose"], None) if isinstance(earlier, dict)
                   else (earlier.member_id, earlier.channel, earlier.purpose, earlier.id))
            if was[:3] != (request.member_id, ch.value, pu.value):
                raise Conflict(f"touch {request.source}/{request.idempotency_key} was requested before for another "
                               f"member or channel", code="touch_conflict", details={"touch_id": was[3]})
            out.append((in_batch[key] if isinstance(earlier, dict) else earlier, True))
            continue
        fact = facts[i]
        if request.member_id in decided:  # an earlier request of this batch took a slot
            own = _planned(members[request.member_id], ch, pu, decided[request.member_id])
            fact = replace(fact, planned={name: [*fact.planned.get(name, ()), *times] for name, times in own.items()})
        decision = decide(facts=fact, channel=ch, purpose=pu, policy=policy, now=now, not_before=request.not_before)
        row = touchpoints.touch_row(member_id=request.member_id, channel=ch.value, purpose=pu.value,
                                    source=request.source, idempotency_key=request.idempotency_key,
                                    template=request.template, variables=request.variables, decision=decision,
                                    now=now)
        if row["status"] == TouchStatus.QUEUED and row["send_at"] is not None:
            decided.setdefault(request.member_id, []).append((ch.value, pu.value, row["send_at"]))
        in_batch[key] = len(rows)
        rows.append(row)
        out.append((len(rows) - 1, False))
    stored = touchpoints.insert_touches(session, rows)
    return [(item if isinstance(item, Touch) else stored[item], replayed) for item, replayed in out]


def recheck_before_send(session: Session, *, touch: Touch, now: datetime) -> tuple[str, ...]:
    """At send time, the reasons a queued touch must not go out any more (empty: send it).

    Caps were reserved when the touch was decided, so only what may have changed since is checked:
    closure, reachability, opt-out, and, for marketing, a new complaint.
    """
    member = get_member(session, member_id=touch.member_id)
    ch, pu = ContactChannel(touch.channel), Purpose(touch.purpose)
    reasons: list[str] = []
    if member.status == "closed":
        reasons.append("member_closed")
    consent = consents_of(session, member_id=touch.member_id).get(ch)
    if consent is not None and consent.value == "opted_out":
        reasons.append("consent_opted_out")
    if unreachable_channels(session, member_id=touch.member_id).get(ch):
        reasons.append("channel_unreachable")
    if pu != Purpose.SERVICE and organisations.accounts_not_to_contact(session, member_ids=[touch.member_id]):
        reasons.append("account_do_not_contact")
    if pu == Purpose.MARKETING:
        complained = last_complaint_at(session, member_id=touch.member_id)
        if in_complaint_cooldown(complained, now=now, cooldown=policy_from_settings(get_settings()).complaint_cooldown):
            reasons.append("complaint_cooldown")
    return tuple(reasons)


def address_of(session: Session, *, member_id: int, channel: str) -> dict[str, str]:
    """Where a channel reaches the member (phone, email, openid)."""
    return _address(get_member(session, member_id=member_id), ContactChannel(channel))


def record_complaint(session: Session, *, member_id: int, category: str, note: str, actor: str,
                     now: datetime) -> Complaint:
    """A complaint stops all marketing to the member for the cool-down period, at once."""
    get_member(session, member_id=member_id)
    complaint = Complaint(member_id=member_id, category=category, note=note, actor=actor, opened_at=now)
    session.add(complaint)
    session.flush()
    record_event(session, kind="complaint.recorded", member_id=member_id,
                 payload={"complaint_id": complaint.id, "category": category, "actor": actor}, now=now)
    return complaint


def resolve_complaint(session: Session, *, member_id: int, complaint_id: int, resolution: str, actor: str,
                      now: datetime) -> Complaint:
    """Close a complaint (the cool-down still runs from when it was opened)."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or complaint.member_id != member_id:
        raise NotFound(f"complaint {complaint_id} not found", code="complaint_not_found")
    if complaint.resolved_at is None:
        complaint.resolved_at, complaint.resolution = now, resolution
        session.add(complaint)
        record_event(session, kind="complaint.resolved", member_id=member_id,
                     payload={"complaint_id": complaint_id, "actor": actor}, now=now)
    return complaint


def complaints_of(session: Session, *, member_id: int, open_only: bool = False) -> list[Complaint]:
    query = select(Complaint).where(Complaint.member_id == member_id)
    if open_only:
        query = query.where(col(Complaint.resolved_at).is_(None))
    return list(session.exec(query.order_by(col(Complaint.id).desc())))


__all__ = ["Verdict", "channel_for", "choose_channels", "evaluate_contact", "request_templated_touch", "request_touch",
           "request_touches",
           "TouchRequest", "record_complaint", "resolve_complaint", "complaints_of", "recheck_before_send",
           "address_of", "list_complaints"]


def list_complaints(session: Session, *, open_only: bool, category: str | None, member_id: int | None,
                    cursor: str | None, limit: int) -> Page[Complaint]:
    """Complaints across members, latest first (the supervisor's queue when ``open_only``)."""
    complaints = Complaint.__table__.c  # type: ignore[attr-defined]
    query = sa.select(Complaint)
    if open_only:
        query = query.where(complaints.resolved_at.is_(None))
    if category:
        query = query.where(complaints.category == category)
    if member_id is not None:
        query = query.where(complaints.member_id == member_id)
    return keyset_page(session, query, order_by=[complaints.opened_at, complaints.id], cursor=cursor, limit=limit)
