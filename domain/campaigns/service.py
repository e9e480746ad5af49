"""Campaign use cases: audience SQL, preview, approval, set-based launch, sending through the gate, report."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from domain.campaigns.models import Campaign, CampaignMember
from domain.campaigns.rules import (
    CampaignAudience,
    MemberAudience,
    campaign_variables,
    campaign_variables_sql,
    check_audience,
)
from domain.contact_policy import service as gate
from domain.errors import Conflict, InvalidInput, NotFound
from domain.exports.rules import safe_cell_sql
from domain.journeys.rules import CONTROL_BUCKET_SQL, conversion_uplift, render_template, render_template_sql
from domain.lifecycle import service as lifecycle
from domain.members import service as members
from domain.members.models import Member
from domain.organisations import service as organisations
from domain.paging import Page, keyset_page
from domain.templates import service as templates
from domain.tiers import service as tiers
from domain.tiers.rules import QUALIFYING_SPEND_SQL


def audience_condition(audience: dict[str, Any], now: datetime, *, model: type[MemberAudience] = CampaignAudience,
                       member: str = "m") -> tuple[str, dict[str, Any]]:
    """The audience's filters as one SQL condition over the members row ``member`` (filters combine with AND),
    and its parameters: the one SQL form of the audience models, used by campaigns and call lists."""
    # Unknown keys and wrong-typed values are the caller's mistake (422), never a 500; the SQL takes the typed
    # values (an instant with its zone, numbers as numbers), whatever spelling the caller used.
    audience = check_audience(audience, model).model_dump(mode="json", exclude_none=True)
    m = member
    where: list[str] = [f"{m}.status <> 'closed'"]
    params: dict[str, Any] = {"today": now.date(), **tiers.window_params(now)}
    for key, column in (("tiers", "tier"), ("statuses", "status"), ("cities", "city"),
                        ("source_channels", "source_channel")):
        if audience.get(key):
            where.append(f"{m}.{column} = ANY(CAST(:{key} AS text[]))")
            params[key] = list(audience[key])
    if audience.get("tags"):
        where.append(f"{m}.tags && CAST(:tags AS varchar[])")
        params["tags"] = list(audience["tags"])
    if audience.get("min_age") is not None:
        where.append(f"{m}.birthday <= CAST(:today AS date) - make_interval(years => CAST(:min_age AS int))")
        params["min_age"] = int(audience["min_age"])
    if audience.get("max_age") is not None:
        where.append(f"{m}.birthday > CAST(:today AS date) - make_interval(years => CAST(:max_age AS int) + 1)")
        params["max_age"] = int(audience["max_age"])
    if audience.get("last_purchase_before"):
        where.append(f"coalesce({m}.last_purchase_at, {m}.joined_at) < CAST(:lpb AS timestamptz)")
        params["lpb"] = audience["last_purchase_before"]
    if audience.get("last_purchase_after"):
        where.append(f"{m}.last_purchase_at >= CAST(:lpa AS timestamptz)")
        params["lpa"] = audience["last_purchase_after"]
    spend = QUALIFYING_SPEND_SQL.format(member_id=f"{m}.id")
    if audience.get("min_spend_fen") is not None:
        where.append(f"{spend} >= :min_spend")
        params["min_spend"] = int(audience["min_spend_fen"])
    if audience.get("max_spend_fen") is not None:
        where.append(f"{spend} <= :max_spend")
        params["max_spend"] = int(audience["max_spend_fen"])
    condition, piece = organisations.audience_condition(member_column=f"{m}.id", audience=audience)
    if piece:
        where.append(condition)
        params.update(piece)
    if audience.get("lifecycle_stages"):
        where.append(f"{lifecycle.STAGE_SQL.format(member_id=f'{m}.id')} = ANY(CAST(:lifecycle_stages AS text[]))")
        params["lifecycle_stages"] = list(audience["lifecycle_stages"])
    if audience.get("at_risk") is not None:
        where.append(("" if audience["at_risk"] else "NOT ") + lifecycle.AT_RISK_SQL.format(member_id=f"{m}.id"))
    return " AND ".join(where), params


def audience_sql(audience: dict[str, Any], now: datetime) -> tuple[str, dict[str, Any]]:
    """One SQL query selecting the campaign audience's member ids."""
    condition, params = audience_condition(audience, now)
    return "SELECT m.id FROM members m WHERE " + condition, params


CAMPAIGN_VARIABLES = frozenset({"name", "tier"})
"""What a campaign's text may say: the variables a send fills for every member."""


def _checked_text(session: Session, *, channel: str, template: str, audience: dict[str, Any], now: datetime,
                  purpose: str | None) -> tuple[str, str]:
    """(purpose, body) of a draft naming ``template``, after refusing unknown audience filters, an unknown
    template, a variable a send cannot fill, or a purpose other than the template's (all 422)."""
    audience_sql(audience, now)  # refuse unknown filters now, not at launch
    found = templates.resolve(session, key=template, channel=None if channel == "preferred" else channel, now=now)
    unknown = sorted(set(found.variables) - CAMPAIGN_VARIABLES)
    if unknown:
        raise InvalidInput(f"template {template!r} uses variable {{{unknown[0]}}}, which a campaign cannot fill",
                           code="invalid_variables", details={"template": template, "variable": unknown[0]})
    return templates.check_touch(found, purpose=purpose, variables={v: "" for v in found.variables}), found.body


def create_campaign(session: Session, *, name: str, channel: str, template: str, audience: dict[str, Any],
                    control_share: float, actor: str, now: datetime, purpose: str | None = None) -> Campaign:
    """A draft naming a catalogue template: its text is fixed now (what the approver reads is what goes out)
    and its purpose is the template's; an unknown template or a variable a send cannot fill is a 422."""
    purpose, body = _checked_text(session, channel=channel, template=template, audience=audience, now=now,
                                  purpose=purpose)
    campaign = Campaign(name=name, channel=channel, purpose=purpose, template=template, body=body,
                        audience=audience, control_share=control_share, created_by=actor, created_at=now)
    session.add(campaign)
    session.flush()
    return campaign


def _draft(session: Session, *, campaign_id: int) -> Campaign:
    """The campaign, locked against a concurrent approval, if it is still a draft (else 409)."""
    campaign = get_campaign(session, campaign_id=campaign_id, for_update=True)
    if campaign.status != "draft":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}: only a draft can change",
                       code="campaign_not_draft", details={"status": campaign.status})
    return campaign


def edit_draft(session: Session, *, campaign_id: int, changes: dict[str, Any], now: datetime) -> Campaign:
    """Change a draft's name, channel, template, purpose, audience or control share, checked as at creation (the
    template's text is fixed again). Once approved or launched a campaign is what the approver read: 409."""
    campaign = _draft(session, campaign_id=campaign_id)
    merged = {"channel": campaign.channel, "template": campaign.template, "audience": campaign.audience,
              "purpose": campaign.purpose if "template" not in changes else None, **changes}
    purpose, body = _checked_text(session, channel=merged["channel"], template=merged["template"],
                                  audience=merged["audience"], now=now, purpose=merged["purpose"])
    for name in ("name", "channel", "template", "audience", "control_share"):
        if name in changes:
            setattr(campaign, name, changes[name])
    campaign.purpose, campaign.body = purpose, body
    session.add(campaign)
    session.flush()
    return campaign


def delete_draft(session: Session, *, campaign_id: int) -> None:
    """Delete a draft (nothing was sent, nobody was picked); an approved or launched campaign stays: 409."""
    session.delete(_draft(session, campaign_id=campaign_id))
    session.flush()


def get_campaign(session: Session, *, campaign_id: int, for_update: bool = False) -> Campaign:
    query = sa.select(Campaign).where(Campaign.id == campaign_id)  # type: ignore[arg-type]
    campaign = session.scalars(query.with_for_update() if for_update else query).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found", code="campaign_not_found")
    return campaign


def preview(session: Session, *, campaign_id: int, now: datetime, sample: int = 20) -> dict[str, Any]:
    """The audience's size and a sample, before anything is sent, and what the contact gate would do with it
    now (``gate_now``)."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    sql, params = audience_sql(campaign.audience, now)
    size = session.scalar(sa.text(f"SELECT count(*) FROM ({sql}) a"), params)
    rows = session.execute(sa.text(f"SELECT m.id, m.member_code, m.tier, m.city FROM members m "
                                   f"WHERE m.id IN ({sql}) ORDER BY random() LIMIT :n"), {**params, "n": sample})
    return {"campaign_id": campaign_id, "audience_size": int(size or 0),
            "expected_control": round(int(size or 0) * campaign.control_share),
            "sample": [dict(r._mapping) for r in rows],
            "gate_now": gate_preview(session, campaign=campaign, audience=(sql, params), size=int(size or 0), now=now)}


PREVIEW_GATE_LIMIT = 20_000
"""Up to this many members the preview asks the gate about every one; a larger audience is judged on a random
sample of this size and the counts are scaled to the audience (``basis: sample``)."""


def gate_preview(session: Session, *, campaign: Campaign, audience: tuple[str, dict[str, Any]], size: int,
                 now: datetime) -> dict[str, Any]:
    """How many of the audience the gate would let through now, deferred or rejected, by reason: the channel
    each member would get (the one channel rule, ``gate.choose_channels``) and the gate's own decision
    (``gate.evaluate_contacts``). Nothing is written; the control group is not taken out (it is drawn at
    launch)."""
    sql, params = audience
    basis = "audience" if size <= PREVIEW_GATE_LIMIT else "sample"
    order = "" if basis == "audience" else " ORDER BY random()"
    ids = [int(i) for i in session.scalars(sa.text(f"SELECT a.id FROM ({sql}) a{order} LIMIT :n"),
                                           {**params, "n": PREVIEW_GATE_LIMIT})]
    if campaign.channel == "preferred":
        chosen = gate.choose_channels(session, member_ids=ids)
    else:
        chosen = dict.fromkeys(ids, campaign.channel)
    verdicts = {"approved": 0, "deferred": 0, "rejected": 0}
    by_reason: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    unreachable = [i for i in ids if chosen.get(i) is None]
    if unreachable:
        verdicts["rejected"] += len(unreachable)
        by_reason["no_reachable_channel"] = len(unreachable)
    for channel in sorted({c for c in chosen.values() if c is not None}):
        group = [i for i in ids if chosen.get(i) == channel]
        for batch in range(0, len(group), 5_000):
            decisions = gate.evaluate_contacts(session, member_ids=group[batch:batch + 5_000], channel=channel,
                                               purpose=campaign.purpose, now=now)
            for decision in decisions.values():
                # "approved" means it would go out now; a deferral goes later (quiet hours, a cap's next slot).
                verdicts[str(decision.verdict)] += 1
                if decision.verdict == "approved":
                    by_channel[channel] = by_channel.get(channel, 0) + 1
                else:
                    for reason in decision.reasons:
                        by_reason[reason] = by_reason.get(reason, 0) + 1
    scale = size / len(ids) if ids and basis == "sample" else 1.0
    return {"basis": basis, "evaluated": len(ids),
            **{k: round(v * scale) for k, v in verdicts.items()},
            "by_reason": {k: round(v * scale) for k, v in sorted(by_reason.items())},
            "approved_by_channel": {k: round(v * scale) for k, v in sorted(by_channel.items())}}


def approve(session: Session, *, campaign_id: int, actor: str, now: datetime) -> Campaign:
    """A second person approves a draft (four eyes): ``actor`` is the approver's staff identity
    (``staff:<username>``; usernames are never reused), and the author may not approve their own campaign."""
    campaign = get_campaign(session, campaign_id=campaign_id, for_update=True)
    if campaign.status != "draft":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}", code="campaign_not_draft")
    if campaign.created_by == actor:
        raise Conflict("a campaign needs a second person's approval", code="self_approval")
    campaign.status, campaign.approved_by, campaign.approved_at = "approved", actor, now
    session.add(campaign)
    return campaign


def launch(session: Session, *, campaign_id: int, now: datetime) -> dict[str, int]:
    """Fix the audience set-based with its control group; the sending job then works through it."""
    campaign = get_campaign(session, campaign_id=campaign_id, for_update=True)
    if campaign.status != "approved":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; approve it first", code="campaign_not_approved")
    sql, params = audience_sql(campaign.audience, now)
    bucket = CONTROL_BUCKET_SQL.format(experiment=":experiment", member_id="a.id")
    result = session.execute(sa.text(
        f"INSERT INTO campaign_members (campaign_id, member_id, control, reasons) "
        f"SELECT :campaign_id, a.id, {bucket} < :share, '{{}}' FROM ({sql}) a ON CONFLICT DO NOTHING"),
        {**params, "campaign_id": campaign_id, "experiment": f"campaign:{campaign_id}",
         "share": campaign.control_share})
    campaign.status, campaign.launched_at = "launched", now
    session.add(campaign)
    return {"audience": int(getattr(result, "rowcount", 0) or 0)}


RECORD_SENT_SQL = """
UPDATE campaign_members cm SET decision = s.decision, touch_id = s.id, reasons = s.reasons FROM stored s
WHERE cm.campaign_id = :sent_campaign AND cm.member_id = s.member_id"""
"""The audience rows of the touches the gate stored in SQL, recorded in its statement (``stored`` is the gate's:
one touch per member and campaign, keyed by the member's id)."""


class SentBatch(NamedTuple):
    requested: int
    """Audience members taken through the gate (0: nothing left to send)."""
    decided_in_sql: int
    """Of them, the common case decided by the gate's one set-based statement."""


CLAIM_SQL = """
WITH claimed AS (
    SELECT cm.id, cm.campaign_id, cm.member_id FROM campaign_members cm JOIN campaigns c ON c.id = cm.campaign_id
    WHERE c.status = 'launched' AND cm.decision IS NULL AND NOT cm.control
    ORDER BY cm.id LIMIT :n FOR UPDATE OF cm SKIP LOCKED),
locked AS ({locks})
SELECT claimed.id, claimed.campaign_id, claimed.member_id FROM claimed, locked ORDER BY claimed.id"""
"""A batch's claim: the next unsent audience rows (SKIP LOCKED: runners share), and, in the same statement, the
gate's contact locks of their members (``gate.lock_contacts_sql``: in member order, so runners whose batches share
members through different campaigns cannot deadlock; JIT off) — taken before the gate's statement starts, so its
snapshot sees what their last holder committed."""


def send_batch(session: Session, *, now: datetime, limit: int = 500, common_case_in_sql: bool = True,
               campaigns_read: dict[int, Campaign] | None = None) -> SentBatch:
    """Send the next unsent members of launched campaigns through the gate (SKIP LOCKED: runners share).

    The common case — nearly everyone: rejections, approvals now, deferrals for quiet hours or a full cap — is
    decided and stored by one ``INSERT … SELECT`` per campaign and channel in the batch, with the text rendered
    in SQL (``gate.request_touches_decided_in_sql``); everyone else (a cap full past the horizon, replays, a
    member in two campaigns of the batch) goes through ``gate.request_touches`` as one call. Both are the gate's
    rules; ``common_case_in_sql=False`` sends every member through the Python gate (the reference the equivalence
    test compares with). ``campaigns_read``: the campaigns an earlier batch of the same run read, kept across
    batches and added to (what a send uses of a campaign — channel, purpose, template, text — is fixed once it is
    approved)."""
    # Every decision of the batch is taken under the locks the claim takes. The per-row loops below unpack the rows
    # (a Row's attribute access costs more than the work; they ran 2,000 times a batch, several times over).
    rows = session.execute(sa.text(CLAIM_SQL.format(locks=gate.lock_contacts_sql(
        "SELECT claimed.member_id AS id FROM claimed"))), {"n": limit}).all()
    if not rows:
        return SentBatch(0, 0)
    found = campaigns_read if campaigns_read is not None else {}
    unread = {campaign_id for _, campaign_id, _ in rows} - found.keys()
    if unread:
        for campaign in session.scalars(sa.select(Campaign).where(Campaign.id.in_(unread))):  # type: ignore[union-attr]
            found[int(campaign.id or 0)] = campaign
    fixed = {campaign_id: c.channel for campaign_id, c in found.items() if c.channel != "preferred"}
    preferring = [member_id for _, campaign_id, member_id in rows if campaign_id not in fixed]
    chosen = gate.choose_channels(session, member_ids=preferring) if preferring else {}  # the one channel rule
    outcomes: list[dict[str, Any]] = []
    channels: dict[int, str] = {}
    for cm_id, campaign_id, member_id in rows:
        channel = fixed.get(campaign_id) or chosen.get(member_id)
        if channel is None:  # no consented, reachable channel: reported, not sent
            outcomes.append({"id": cm_id, "decision": "rejected", "reasons": ["no_reachable_channel"],
                             "touch_id": None})
        else:
            channels[cm_id] = channel
    decided: set[int] = set()
    if common_case_in_sql:
        asked_for = Counter(member_id for cm_id, _, member_id in rows if cm_id in channels)
        groups: dict[tuple[int, str], list[tuple[int, int]]] = {}
        for cm_id, campaign_id, member_id in rows:
            if cm_id in channels and asked_for[member_id] == 1:
                groups.setdefault((campaign_id, channels[cm_id]), []).append((cm_id, member_id))
        for (campaign_id, channel), group in groups.items():
            campaign = found[campaign_id]
            body = render_template_sql(campaign.body, campaign_variables_sql("m"))
            if body is None:  # a text with no SQL form goes through the Python gate with everyone else
                continue
            filled = {**campaign_variables_sql("m"), "body": body[0]}
            expression = "jsonb_build_object(" + ", ".join(f"'{k}', {v}" for k, v in filled.items()) + ")"
            # The audience rows are recorded in the gate's statement (``record``): its rows never come to Python.
            stored = gate.request_touches_decided_in_sql(
                session, asks=[(member_id, str(member_id)) for _, member_id in group], channel=channel,
                purpose=campaign.purpose, source=f"campaign:{campaign.id}", template=campaign.template,
                variables=(expression, body[1]), now=now, record=(RECORD_SENT_SQL, {"sent_campaign": campaign.id}),
                already_locked=True)
            decided.update(cm_id for cm_id, member_id in group if str(member_id) in stored)
    # Usually everyone was decided in SQL: then there is no rest to look for row by row.
    rest = [] if len(decided) == len(channels) else [r for r in rows if r.id in channels and r.id not in decided]
    people = {m.id: m for m in members.get_members(session, member_ids=[r.member_id for r in rest])} if rest else {}
    requests = []
    for row in rest:
        campaign, member = found[row.campaign_id], people[row.member_id]
        variables: dict[str, Any] = campaign_variables(name=member.name, tier=member.tier)
        variables["body"] = render_template(campaign.body, variables)
        requests.append(gate.TouchRequest(member_id=row.member_id, channel=channels[row.id], purpose=campaign.purpose,
                                          source=f"campaign:{campaign.id}", idempotency_key=str(row.member_id),
                                          template=campaign.template, variables=variables))
    touches = gate.request_touches(session, requests, now=now) if requests else []
    outcomes += [{"id": row.id, "decision": touch.decision, "reasons": list(touch.reasons), "touch_id": touch.id}
                 for row, (touch, _) in zip(rest, touches, strict=True)]
    if outcomes:
        session.execute(sa.text("""
            UPDATE campaign_members cm SET decision = r.decision, touch_id = r.touch_id,
                   reasons = ARRAY(SELECT jsonb_array_elements_text(r.reasons))
            FROM jsonb_to_recordset(CAST(:outcomes AS jsonb)) AS r(id bigint, decision text, reasons jsonb,
                                                                  touch_id bigint)
            WHERE cm.id = r.id"""), {"outcomes": json.dumps(outcomes)})
    return SentBatch(len(rows), len(decided))


def report(session: Session, *, campaign_id: int, window_days: int = 30) -> dict[str, Any]:
    """Audience, control, sent, deferred, suppressed by reason, purchases after launch, uplift with 95% CI."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    start = campaign.launched_at
    end = start + timedelta(days=window_days) if start else None
    row = session.execute(sa.text("""
        SELECT count(*) AS audience, count(*) FILTER (WHERE cm.control) AS control,
               count(*) FILTER (WHERE t.status = 'sent') AS sent,
               count(*) FILTER (WHERE cm.decision = 'deferred') AS deferred,
               count(*) FILTER (WHERE NOT cm.control AND EXISTS (SELECT 1 FROM orders o WHERE o.member_id = cm.member_id
                                 AND o.occurred_at >= :start AND o.occurred_at < :end)) AS treatment_converted,
               count(*) FILTER (WHERE cm.control AND EXISTS (SELECT 1 FROM orders o WHERE o.member_id = cm.member_id
                                 AND o.occurred_at >= :start AND o.occurred_at < :end)) AS control_converted
        FROM campaign_members cm LEFT JOIN touches t ON t.id = cm.touch_id WHERE cm.campaign_id = :c"""),
        {"c": campaign_id, "start": start, "end": end}).mappings().one()
    reasons = session.execute(sa.text("""
        SELECT r, count(*) FROM campaign_members cm, unnest(cm.reasons) r
        WHERE cm.campaign_id = :c AND cm.decision = 'rejected' GROUP BY r"""), {"c": campaign_id}).all()
    treated = row["audience"] - row["control"]
    uplift = conversion_uplift(treatment_converted=row["treatment_converted"], treatment_size=treated,
                               control_converted=row["control_converted"], control_size=row["control"])
    return {"campaign_id": campaign_id, "status": campaign.status, "audience": row["audience"],
            "control": row["control"], "sent": row["sent"], "deferred": row["deferred"],
            "suppressed": {r: int(n) for r, n in reasons},
            "converted": {"treatment": row["treatment_converted"], "control": row["control_converted"]},
            "uplift": {"treatment_rate": uplift.treatment_rate, "control_rate": uplift.control_rate,
                       "uplift": uplift.uplift, "ci95": [uplift.ci_low, uplift.ci_high]}}


def list_campaigns(session: Session, *, status: str | None, cursor: str | None, limit: int) -> Page[Campaign]:
    """Campaigns, newest first, optionally of one status (draft, approved, launched)."""
    campaigns = Campaign.__table__.c  # type: ignore[attr-defined]
    query = sa.select(Campaign)
    if status:
        query = query.where(campaigns.status == status)
    return keyset_page(session, query, order_by=[campaigns.id], cursor=cursor, limit=limit)


def audience_export_query(*, campaign_id: int) -> sa.Select[Any]:
    """A launched campaign's audience with its treatment/control assignment and the gate's decision, for
    analysis: member codes, no contact details."""
    cm, m = CampaignMember.__table__.c, Member.__table__.c  # type: ignore[attr-defined]
    return (sa.select(m.member_code, sa.case((cm.control, "control"), else_="treatment").label("group"),
                      cm.decision, sa.func.array_to_string(cm.reasons, ";").label("reasons"), m.tier,
                      safe_cell_sql(m.city).label("city"), m.status)
            .join(Member, m.id == cm.member_id).where(cm.campaign_id == campaign_id).order_by(cm.id))
