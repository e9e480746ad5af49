"""The console's pages. Each one parses a form or a query, calls services, and renders a template."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from api.console.auth import (
    ANY_STAFF_PAGES,
    AUDIT_PAGES,
    CALL_CENTER_PAGES,
    COOKIE,
    MARKETING_PAGES,
    OPERATIONS_PAGES,
    SUPERVISION_PAGES,
    cookie_settings,
    page,
)
from api.console.charts import stacked_bars, uplift_chart
from api.deps import Caller, NowDep, SessionDep, log_personal_read
from api.routes.exports import csv_response, log_export
from api.routes.members import MemberSearchDep, member_summaries
from domain.access.rules import CredentialKind
from domain.access.service import list_access_log
from domain.campaigns import service as campaigns
from domain.clock import ensure_aware
from domain.crm import service as crm
from domain.db import get_engine
from domain.errors import DomainError, InvalidInput
from domain.exports.service import stream_csv
from domain.journeys import service as journeys
from domain.journeys.builtins import BUILT_INS
from domain.lifecycle.rules import STAGES
from domain.members import service as members
from domain.members.models import Member, MemberStatus
from domain.operations.models import JobRunStatus
from domain.operations.service import list_job_runs
from domain.settings import get_settings
from domain.staff import service as staff
from domain.staff.models import StaffRole
from domain.templates.service import BUILT_IN as BUILT_IN_TEMPLATES
from domain.touchpoints.service import suppressions_by_day

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
AgentPage = Annotated[Caller, Depends(page(CALL_CENTER_PAGES))]
SupervisorPage = Annotated[Caller, Depends(page(SUPERVISION_PAGES))]
MarketerPage = Annotated[Caller, Depends(page(MARKETING_PAGES))]
OperatorPage = Annotated[Caller, Depends(page(OPERATIONS_PAGES))]
AuditPage = Annotated[Caller, Depends(page(AUDIT_PAGES))]

REASONS = {
    "complaint_cooldown": "a complaint in the last 90 days", "complaint": "a complaint in the last 90 days",
    "consent_missing": "no consent for this channel", "consent_opted_out": "opted out of this channel",
    "onboarding_window": "still in the first 30 days (no selling)", "quiet_hours": "quiet hours in the member's time",
    "channel_unreachable": "the channel cannot reach them", "no_phone": "no phone number",
    "member_closed": "membership closed", "suppressed_at_send": "suppressed at send time",
    "no_reachable_channel": "no consented, reachable channel",
}
OUTCOMES = ("reached", "accepted", "declined", "no_answer", "callback", "wrong_number", "do_not_call")
DONE = {"outcome": "Call outcome saved.", "note": "Note saved.", "approved": "Approved by a second person.",
        "launched": "Launched: audience and control group are fixed.", "created": "Created.",
        "recalled": "Leads recalled to the pool."}


def reason_text(code: str) -> str:
    """A gate or extraction reason in words (``cap:marketing_calls`` → frequency cap: marketing calls)."""
    if code.startswith("cap:"):
        return "frequency cap: " + code[4:].replace("_", " ")
    return REASONS.get(code, code.replace("_", " "))


def local_time(value: datetime | str | None, zone: str | None = None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant in the member's (or the business's) time zone."""
    if value is None:
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return ensure_aware(at).astimezone(ZoneInfo(zone or get_settings().default_timezone)).strftime(fmt)


templates.env.filters["reason"] = reason_text
templates.env.filters["local"] = local_time


def render(request: Request, name: str, caller: Caller | None, *, title: str, section: str = "",
           status_code: int = 200, **context: Any) -> HTMLResponse:
    given = context.pop("flash", None)
    flash = DONE.get(request.query_params.get("done") or "") or given
    return templates.TemplateResponse(request, name, {
        "caller": caller, "title": title, "section": section, "flash": flash,
        "flash_error": context.pop("flash_error", False), **context}, status_code=status_code)


def back(path: str, done: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}done={done}", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only a console path: a login form must not become an open redirect."""
    return target if target and target.startswith("/console/") and not target.startswith("//") else "/console"


# --- login -------------------------------------------------------------------------------------------------


LANDING = {"agent": "/console/agent", "supervisor": "/console/supervisor", "marketer": "/console/marketer",
           "operator": "/console/operator"}


@router.get("")
def home(caller: Annotated[Caller, Depends(page(ANY_STAFF_PAGES))]) -> RedirectResponse:
    """Each role lands on its own screen."""
    return RedirectResponse(LANDING.get(str(caller.role), "/console/agent"), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: Annotated[str | None, Query(max_length=200)] = None) -> HTMLResponse:
    return render(request, "login.html", None, title="Log in", next=_safe_next(next), error=None, username=None)


@router.post("/login")
def login(request: Request, session: SessionDep, now: NowDep, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)], next: Annotated[str, Form(max_length=200)] = "/console"
          ) -> Response:
    outcome = staff.log_in(session, username=username, password=password, now=now)
    if outcome.issued is None:
        message = outcome.refusal.message if outcome.refusal else "wrong username or password"
        return render(request, "login.html", None, title="Log in", next=_safe_next(next), error=message,
                      username=username, status_code=401)
    issued = outcome.issued
    landing = LANDING.get(str(issued.account.role), "/console")
    wanted = _safe_next(next)
    target = wanted if wanted not in ("/console", "/console/") else landing
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(value=issued.access_token, **cookie_settings(  # type: ignore[arg-type]
        secure=request.url.scheme == "https", expires_at=issued.expires_at, now=now))
    return response


@router.post("/logout")
def logout(session: SessionDep, now: NowDep, caller: Annotated[Caller, Depends(page(ANY_STAFF_PAGES))]
           ) -> RedirectResponse:
    if caller.session_id:
        staff.end_session(session, session_id=caller.session_id, now=now)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


# --- agent ---------------------------------------------------------------------------------------------------


def _agent_page(request: Request, session: SessionDep, caller: Caller, now: datetime, *, member: Member | None,
                reason: str, lead: Any = None, flash: str | None = None) -> HTMLResponse:
    picture = None
    if member is not None:
        assert member.id is not None
        log_personal_read(session, caller, member_id=member.id, action="crm.lookup", reason=reason, now=now)
        picture = crm.member_picture(session, member=member, unmasked=caller.sees_contact_details, now=now)
    lists = crm.list_call_lists(session, purpose=None, cursor=None, limit=50).items
    return render(request, "agent.html", caller, title="Agent desk", section="agent", p=picture, lead=lead,
                  call_lists=lists, outcomes=OUTCOMES, flash=flash, flash_error=bool(flash))


@router.get("/agent", response_class=HTMLResponse)
def agent_desk(request: Request, session: SessionDep, caller: AgentPage, now: NowDep,
               member_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               lead_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> HTMLResponse:
    member = members.get_member(session, member_id=member_id) if member_id else None
    lead = crm.get_lead(session, lead_id=lead_id) if lead_id else None
    return _agent_page(request, session, caller, now, member=member, lead=lead, reason="call")


@router.post("/agent/lookup", response_class=HTMLResponse)
def agent_lookup(request: Request, session: SessionDep, caller: AgentPage, now: NowDep,
                 phone: Annotated[str, Form(max_length=32)], reason: Annotated[str, Form(max_length=200)] = "call"
                 ) -> HTMLResponse:
    # A POST, so the phone number never sits in a URL, a browser history or a proxy's log.
    try:
        member = members.find_member(session, phone=phone)
    except InvalidInput as exc:
        return _agent_page(request, session, caller, now, member=None, reason=reason, flash=exc.message)
    if member is None:
        return _agent_page(request, session, caller, now, member=None, reason=reason,
                           flash="No member has that phone number.")
    return _agent_page(request, session, caller, now, member=member, reason=reason)


@router.post("/agent/next-lead")
def agent_next_lead(request: Request, session: SessionDep, caller: AgentPage, now: NowDep,
                    call_list_id: Annotated[int, Form(ge=1, le=2**31 - 1)]) -> Response:
    try:
        pull = crm.pull_next_lead(session, call_list_id=call_list_id, agent_id=str(caller.agent_id), now=now)
    except DomainError as exc:
        return _agent_page(request, session, caller, now, member=None, reason="call", flash=exc.message)
    if pull.lead is None:
        return _agent_page(request, session, caller, now, member=None, reason="call", flash=no_lead_text(pull))
    return RedirectResponse(f"/console/agent?member_id={pull.lead.member_id}&lead_id={pull.lead.id}",
                            status_code=303)


def no_lead_text(pull: crm.LeadPull) -> str:
    """Why an agent got no lead: an empty list reads differently from one whose leads the gate holds back now
    (quiet hours at night, caps), which tells the agent when to come back."""
    if not pull.skipped:
        return "No lead left to call on this list right now."
    reasons = ", ".join(f"{reason_text(code)}: {count}" for code, count in
                        sorted(pull.skipped_by_reason.items(), key=lambda item: (-item[1], item[0])))
    text = f"No lead may be called right now: {pull.skipped} held back by the contact rules ({reasons})."
    if pull.next_callable_at is not None:
        text += (f" The first becomes callable at {local_time(pull.next_callable_at)}"
                 f" ({get_settings().default_timezone} time).")
    return text


@router.post("/agent/members/{member_id}/outcome")
def agent_outcome(request: Request, member_id: Id, session: SessionDep, caller: AgentPage, now: NowDep,
                  outcome: Annotated[str, Form(max_length=20)], note: Annotated[str, Form(max_length=2000)] = "",
                  callback_at: Annotated[str, Form(max_length=32)] = "",
                  lead_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None) -> Response:
    member = members.get_member(session, member_id=member_id)
    callback = None
    if callback_at:
        # The agent types the time the member asked for, in the member's own time zone.
        callback = datetime.fromisoformat(callback_at).replace(tzinfo=ZoneInfo(member.timezone))
    try:
        crm.record_call_outcome(session, member_id=member_id, agent_id=str(caller.agent_id), outcome=outcome,
                                note=note, callback_at=callback, lead_id=lead_id, now=now)
    except DomainError as exc:
        return _agent_page(request, session, caller, now, member=member, reason="call", flash=exc.message)
    return back(f"/console/agent?member_id={member_id}", "outcome")


@router.post("/agent/members/{member_id}/note")
def agent_note(member_id: Id, session: SessionDep, caller: AgentPage, now: NowDep,
               text: Annotated[str, Form(min_length=1, max_length=4000)]) -> RedirectResponse:
    crm.add_note(session, member_id=member_id, agent_id=str(caller.agent_id), fields={}, text=text, now=now)
    return back(f"/console/agent?member_id={member_id}", "note")


@router.get("/agent/members", response_class=HTMLResponse)
def agent_member_search(request: Request, session: SessionDep, caller: AgentPage, now: NowDep,
                        search: MemberSearchDep, cursor: Annotated[str | None, Query(max_length=400)] = None
                        ) -> HTMLResponse:
    # The API's own search (typed filters, the same service); an empty form lists nobody rather than everyone.
    found = members.search_members(session, search=search, cursor=cursor, limit=25) if any(
        asdict(search).values()) else None
    shown = member_summaries(session, list(found.items) if found else [], unmasked=caller.sees_contact_details)
    for m in shown:
        log_personal_read(session, caller, member_id=m.id, action="member.search", reason="console search", now=now)
    return render(request, "members.html", caller, title="Member search", section="members", found=shown,
                  next_cursor=found.next_cursor if found else None, search=asdict(search), stages=STAGES,
                  query={k: v for k, v in asdict(search).items() if v},
                  statuses=[s.value for s in MemberStatus])


# --- supervisor ----------------------------------------------------------------------------------------------


@router.get("/supervisor", response_class=HTMLResponse)
def supervisor(request: Request, session: SessionDep, caller: SupervisorPage,
               cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    found = crm.list_call_lists(session, purpose=None, cursor=cursor, limit=25)
    rows = [{"list": c, "report": crm.call_list_report(session, call_list_id=c.id or 0)} for c in found.items]
    return render(request, "supervisor.html", caller, title="Call lists", section="supervisor", lists=rows,
                  next_cursor=found.next_cursor)


@router.get("/supervisor/call-lists/{call_list_id}", response_class=HTMLResponse)
def supervisor_call_list(request: Request, call_list_id: Id, session: SessionDep, caller: SupervisorPage
                         ) -> HTMLResponse:
    call_list = crm.get_call_list(session, call_list_id=call_list_id)
    return render(request, "call_list.html", caller, title=f"Call list: {call_list.name}", section="supervisor",
                  call_list=call_list, report=crm.call_list_report(session, call_list_id=call_list_id),
                  agents=crm.call_list_progress_by_agent(session, call_list_id=call_list_id))


@router.post("/supervisor/call-lists/{call_list_id}/recall")
def supervisor_recall(call_list_id: Id, session: SessionDep, caller: SupervisorPage,
                      agent_id: Annotated[str | None, Form(max_length=64)] = None) -> RedirectResponse:
    crm.recall_agent_leads(session, call_list_id=call_list_id, agent_id=agent_id or None)
    return back(f"/console/supervisor/call-lists/{call_list_id}", "recalled")


@router.get("/supervisor/call-lists/{call_list_id}/leads.csv")
def supervisor_export(call_list_id: Id, session: SessionDep, caller: SupervisorPage, now: NowDep
                      ) -> StreamingResponse:
    crm.get_call_list(session, call_list_id=call_list_id)
    log_export(session, caller, crm.lead_member_ids(call_list_id=call_list_id), action="export.call_list",
               reason="dialer export (console)", now=now)
    query = crm.leads_export_query(call_list_id=call_list_id, unmasked=caller.sees_contact_details)
    return csv_response(stream_csv(get_engine(), query), f"call-list-{call_list_id}-leads.csv")


@router.get("/supervisor/access-log", response_class=HTMLResponse)
def supervisor_access_log(request: Request, session: SessionDep, caller: AuditPage,
                          member_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                          agent_id: Annotated[str | None, Query(max_length=64)] = None,
                          cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    found = list_access_log(session, member_id=member_id, agent_id=agent_id or None, api_key_name=None,
                            action=None, cursor=cursor, limit=50)
    return render(request, "access_log.html", caller, title="Access log", section="access-log", entries=found.items,
                  next_cursor=found.next_cursor, filters={"member_id": member_id, "agent_id": agent_id})


# --- marketer ------------------------------------------------------------------------------------------------


@router.get("/marketer", response_class=HTMLResponse)
def marketer(request: Request, session: SessionDep, caller: MarketerPage,
             status: Annotated[str, Query(pattern="^(draft|approved|launched|)$")] = "",
             cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    found = campaigns.list_campaigns(session, status=status or None, cursor=cursor, limit=25)
    return render(request, "marketer.html", caller, title="Campaigns", section="marketer", campaigns=found.items,
                  next_cursor=found.next_cursor, status=status,
                  templates={key: body for key, _, body, _ in BUILT_IN_TEMPLATES})


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


@router.post("/marketer/campaigns")
def marketer_create(session: SessionDep, caller: MarketerPage, now: NowDep,
                    name: Annotated[str, Form(min_length=1, max_length=100)],
                    template: Annotated[str, Form(min_length=1, max_length=64)],
                    body: Annotated[str, Form(min_length=1, max_length=1000)],
                    channel: Annotated[str, Form(pattern="^(preferred|sms|wechat|email|app|phone)$")],
                    purpose: Annotated[str, Form(pattern="^(marketing|care|service)$")],
                    tiers: Annotated[list[str] | None, Form()] = None,
                    cities: Annotated[str, Form(max_length=500)] = "",
                    tags: Annotated[str, Form(max_length=500)] = "",
                    min_age: Annotated[int | None, Form(ge=0, le=120)] = None,
                    max_age: Annotated[int | None, Form(ge=0, le=120)] = None,
                    control_share: Annotated[float, Form(ge=0, le=0.5)] = 0.1) -> RedirectResponse:
    audience: dict[str, Any] = {}
    if tiers:
        audience["tiers"] = tiers
    if _words(cities):
        audience["cities"] = _words(cities)
    if _words(tags):
        audience["tags"] = _words(tags)
    if min_age is not None:
        audience["min_age"] = min_age
    if max_age is not None:
        audience["max_age"] = max_age
    # The text is the catalogue template's (issue #16); the form's body field is not used any more.
    campaign = campaigns.create_campaign(session, name=name, channel=channel, purpose=purpose, template=template,
                                         audience=audience, control_share=control_share, actor=caller.actor, now=now)
    return back(f"/console/marketer/campaigns/{campaign.id}", "created")


def _gate_preview(preview: dict[str, Any]) -> dict[str, Any] | None:
    """What the gate would let through now (``campaigns.gate_preview``): allowed now, deferred, and the reasons
    it holds members back, most frequent first."""
    gate = preview.get("gate_now")
    if not isinstance(gate, dict):
        return None
    refused = gate.get("by_reason") or {}
    return {"allowed": gate.get("approved"), "deferred": gate.get("deferred"), "rejected": gate.get("rejected"),
            "basis": gate.get("basis"), "refused": sorted(refused.items(), key=lambda kv: -kv[1])}


def _campaign_context(session: SessionDep, campaign_id: int, now: datetime) -> dict[str, Any]:
    campaign = campaigns.get_campaign(session, campaign_id=campaign_id)
    preview = report = chart = None
    if campaign.status == "launched":
        report = campaigns.report(session, campaign_id=campaign_id)
        uplift = report["uplift"]
        chart = uplift_chart(treatment_rate=uplift["treatment_rate"], control_rate=uplift["control_rate"],
                             uplift=uplift["uplift"], ci_low=uplift["ci95"][0], ci_high=uplift["ci95"][1],
                             treatment_size=report["audience"] - report["control"], control_size=report["control"])
    else:
        preview = campaigns.preview(session, campaign_id=campaign_id, now=now)
    return {"title": f"Campaign: {campaign.name}", "section": "marketer", "campaign": campaign, "preview": preview,
            "gate": _gate_preview(preview) if preview else None, "report": report, "chart": chart}


@router.get("/marketer/campaigns/{campaign_id}", response_class=HTMLResponse)
def marketer_campaign(request: Request, campaign_id: Id, session: SessionDep, caller: MarketerPage, now: NowDep
                      ) -> HTMLResponse:
    return render(request, "campaign.html", caller, **_campaign_context(session, campaign_id, now))


def _campaign_with_error(request: Request, session: SessionDep, caller: Caller, now: datetime, campaign_id: int,
                         message: str) -> HTMLResponse:
    return render(request, "campaign.html", caller, status_code=422, flash=message, flash_error=True,
                  **_campaign_context(session, campaign_id, now))


@router.post("/marketer/campaigns/{campaign_id}/approve")
def marketer_approve(request: Request, campaign_id: Id, session: SessionDep, caller: MarketerPage, now: NowDep,
                     username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=256)]
                     ) -> Response:
    """Four eyes in one room: the approver signs in on this form with their own account; the approval is
    recorded in their name (and refused if they planned the campaign, or may not approve)."""
    outcome = staff.log_in(session, username=username, password=password, now=now)
    if outcome.issued is None:
        return _campaign_with_error(request, session, caller, now, campaign_id, "The approver's sign-in failed: "
                                    + (outcome.refusal.message if outcome.refusal else "wrong username or password"))
    approver = outcome.issued.account
    staff.end_session(session, session_id=outcome.issued.session_id, now=now)  # signed in for this one act
    if not MARKETING_PAGES.admits(CredentialKind.STAFF, role=StaffRole(approver.role)):
        return _campaign_with_error(request, session, caller, now, campaign_id,
                                    f"{approver.username} is a {approver.role} and may not approve campaigns.")
    try:
        campaigns.approve(session, campaign_id=campaign_id, actor=f"staff:{approver.username}", now=now)
    except DomainError as exc:
        return _campaign_with_error(request, session, caller, now, campaign_id, exc.message)
    return back(f"/console/marketer/campaigns/{campaign_id}", "approved")


@router.post("/marketer/campaigns/{campaign_id}/launch")
def marketer_launch(campaign_id: Id, session: SessionDep, caller: MarketerPage, now: NowDep) -> RedirectResponse:
    campaigns.launch(session, campaign_id=campaign_id, now=now)
    return back(f"/console/marketer/campaigns/{campaign_id}", "launched")


@router.get("/marketer/campaigns/{campaign_id}/audience.csv")
def marketer_audience(campaign_id: Id, session: SessionDep, caller: MarketerPage) -> StreamingResponse:
    campaigns.get_campaign(session, campaign_id=campaign_id)
    return csv_response(stream_csv(get_engine(), campaigns.audience_export_query(campaign_id=campaign_id)),
                        f"campaign-{campaign_id}-audience.csv")


@router.get("/marketer/journeys", response_class=HTMLResponse)
def marketer_journeys(request: Request, session: SessionDep, caller: MarketerPage, now: NowDep) -> HTMLResponse:
    journeys.ensure_builtin_journeys(session, now=now)
    found = journeys.list_journeys(session, limit=200)
    rows = [{"id": j.id, "key": j.key, "name": j.name, "trigger": j.trigger, "status": j.status,
             "version": v.version, "steps": v.steps, "control_share": v.control_share} for j, v in found.items]
    return render(request, "journeys.html", caller, title="Journeys", section="journeys", journeys=rows,
                  blueprints=BUILT_INS)


@router.post("/marketer/journeys")
def marketer_create_journey(request: Request, session: SessionDep, caller: MarketerPage, now: NowDep,
                            blueprint: Annotated[str, Form(max_length=40)],
                            key: Annotated[str, Form(min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$")],
                            name: Annotated[str, Form(min_length=1, max_length=100)],
                            control_share: Annotated[float, Form(ge=0, le=0.5)] = 0.1) -> Response:
    """A new journey from a built-in one's steps (edited afterwards through the API's new versions)."""
    spec = next((b for b in BUILT_INS if b["key"] == blueprint), None)
    if spec is None:
        raise InvalidInput(f"unknown template journey {blueprint!r}", code="unknown_blueprint")
    journey = journeys.create_journey(session, key=key, name=name, trigger=spec["trigger"], steps=spec["steps"],
                                      control_share=control_share, now=now)
    return back(f"/console/marketer/journeys/{journey.id}", "created")


@router.get("/marketer/journeys/{journey_id}", response_class=HTMLResponse)
def marketer_journey(request: Request, journey_id: Id, session: SessionDep, caller: MarketerPage) -> HTMLResponse:
    journey, version = journeys.get_journey(session, journey_id=journey_id)
    report = journeys.journey_report(session, journey_id=journey_id)
    uplift = report["uplift"]
    chart = uplift_chart(treatment_rate=uplift["treatment_rate"], control_rate=uplift["control_rate"],
                         uplift=uplift["uplift"], ci_low=uplift["ci95"][0], ci_high=uplift["ci95"][1],
                         treatment_size=report["enrolled"] - report["control"], control_size=report["control"],
                         title="Conversion after enrolling")
    return render(request, "journey.html", caller, title=f"Journey: {journey.name}", section="journeys",
                  journey={"steps": version.steps}, report=report, chart=chart)


@router.get("/marketer/suppressions", response_class=HTMLResponse)
def marketer_suppressions(request: Request, session: SessionDep, caller: MarketerPage, now: NowDep,
                          days: Annotated[int, Query(ge=1, le=366)] = 30) -> HTMLResponse:
    zone = get_settings().default_timezone
    rows = suppressions_by_day(session, since=now - timedelta(days=days), until=now, timezone=zone)
    day_list = sorted({d for d, _, _ in rows})
    totals: dict[str, int] = {}
    for _, reason, n in rows:
        totals[reason] = totals.get(reason, 0) + n
    reasons = sorted(totals, key=lambda r: -totals[r])
    counts = {(d, r): n for d, r, n in rows}
    series = {reason_text(r): [counts.get((d, r), 0) for d in day_list] for r in reasons}
    chart = stacked_bars(days=day_list, series=series, title=f"Touches held back by the gate, per day ({zone})")
    return render(request, "suppressions.html", caller, title="Gate suppressions", section="suppressions",
                  chart=chart, totals=[(r, totals[r]) for r in reasons], days=days)


# --- operator ------------------------------------------------------------------------------------------------


@router.get("/operator", response_class=HTMLResponse)
def operator(request: Request, session: SessionDep, caller: OperatorPage,
             cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    failed = list_job_runs(session, status=JobRunStatus.FAILED, limit=20).items if not cursor else []
    runs = list_job_runs(session, cursor=cursor, limit=50)
    return render(request, "operator.html", caller, title="Job runs", section="operator", failed=failed,
                  runs=runs.items, next_cursor=runs.next_cursor)
