"""The console end to end in Debian's Chromium: what an agent, a supervisor, a marketer and an operator do.

Each test writes the screenshot of its screens to docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from playwright.sync_api import expect
from sqlmodel import Session, select

from domain.access.service import record_access
from domain.campaigns import service as campaigns
from domain.campaigns.models import Campaign
from domain.contact_policy import service as gate
from domain.crm import service as crm
from domain.crm.models import CallOutcome, Lead
from domain.db import unit_of_work
from domain.journeys import service as journeys
from domain.members.models import ContactChannel
from domain.operations.models import JobRun, JobRunStatus
from tests.browser.conftest import CLOCK, screenshot
from tests.factories import make_member, make_order, make_staff

PASSWORD = "correct horse battery staple"
CONSENTS = {ContactChannel.PHONE: True, ContactChannel.SMS: True}


def staff(engine, username: str, role: str, pii: bool = False) -> None:
    with unit_of_work(engine) as session:
        make_staff(session, role=role, username=username, pii_access=pii, password=PASSWORD)
        session.commit()


def log_in(page, base: str, username: str, landing: str) -> None:
    page.goto(f"{base}/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(landing))


def seed_call_center(engine):
    now = CLOCK
    with unit_of_work(engine) as session:
        wang = make_member(session, now=now - timedelta(days=400), phone="+8613800138000", name="Wang Fang",
                           city="Shanghai", consents=CONSENTS, tags=["family", "wechat-follower"])
        make_order(session, member_id=wang.id, amount_fen=268_000, occurred_at=now - timedelta(days=40), now=now)
        others = [make_member(session, now=now - timedelta(days=300), name=name, city=city, consents=CONSENTS)
                  for name, city in (("Li Lei", "Beijing"), ("Zhang Wei", "Shenzhen"), ("Chen Jing", "Shanghai"),
                                     ("Liu Yang", "Hangzhou"))]
        complained = make_member(session, now=now - timedelta(days=300), name="Zhao Min", consents=CONSENTS)
        gate.record_complaint(session, member_id=complained.id, category="rude_call", note="", actor="agent-1",
                              now=now - timedelta(days=5))
        crm.record_interest(session, member_id=wang.id, product="family-plan", source="ivr",
                            at=now - timedelta(days=2))
        for days, purpose, template in ((20, "care", "birthday"), (9, "marketing", "spring_offer"),
                                        (8, "marketing", "comeback_offer"), (3, "service", "points_statement")):
            gate.request_touch(session, member_id=wang.id, channel="sms", purpose=purpose, source="journey:demo",
                               idempotency_key=template, template=template, variables={},
                               now=now - timedelta(days=days, hours=-2))
        crm.add_note(session, member_id=wang.id, agent_id="li.na", fields={}, now=now - timedelta(days=30),
                     text="Prefers calls after 18:00; two children.")
        call_list = crm.create_call_list(session, name="Family plan — spring", product="family-plan",
                                         purpose="marketing", audience={}, weights={}, interest_days=30,
                                         recall_hours=48, agent_capacity=20, now=now)
        crm.extract_leads(session, call_list_id=call_list.id, now=now)
        session.commit()
        return wang, others, call_list.id


def test_an_agent_looks_a_member_up_by_phone_records_an_outcome_and_works_the_next_lead(live_server, browser_page,
                                                                                       committed_engine):
    page = browser_page
    wang, _, list_id = seed_call_center(committed_engine)
    staff(committed_engine, "li.na", "agent", pii=True)
    log_in(page, live_server, "li.na", "/console/agent")

    page.fill("#phone", "138 0013 8000")
    page.click("text=Find member")
    expect(page.locator("h2", has_text="Wang Fang")).to_be_visible()
    expect(page.get_by_test_id("phone")).to_contain_text("+8613800138000")
    expect(page.get_by_test_id("verdict")).to_contain_text(re.compile("pitch by phone|Do not pitch"))
    expect(page.locator("text=Prefers calls after 18:00")).to_be_visible()
    screenshot(page, "agent-desk")

    page.select_option("#outcome", "reached")
    page.fill("#note", "Interested in the family plan; wants the price for four people.")
    page.click("text=Save outcome")
    expect(page.locator(".flash")).to_have_text("Call outcome saved.")

    page.click("text=Next lead")
    expect(page.locator(".flash")).to_contain_text("asked about family-plan")  # the warm lead comes first
    page.select_option("#outcome", "accepted")
    page.click("text=Save outcome")
    expect(page.locator(".flash")).to_have_text("Call outcome saved.")
    with Session(committed_engine) as session:
        outcomes = session.exec(select(CallOutcome).order_by(CallOutcome.id)).all()
        lead = session.exec(select(Lead).where(Lead.member_id == wang.id, Lead.call_list_id == list_id)).one()
    assert [(o.member_id, o.outcome, o.agent_id) for o in outcomes] == [(wang.id, "reached", "li.na"),
                                                                       (wang.id, "accepted", "li.na")]
    assert (lead.state, lead.outcome, lead.agent_id) == ("worked", "accepted", "li.na")


def test_an_agent_told_no_lead_sees_why_and_when_to_come_back(live_server, browser_page, committed_engine):
    # Noon in Shanghai is 23:00 the night before in New York: every lead of this list is in its quiet hours.
    page = browser_page
    with unit_of_work(committed_engine) as session:
        for name in ("Amy Chen", "Bo Li", "Cai Wen"):
            make_member(session, now=CLOCK - timedelta(days=300), name=name, timezone="America/New_York",
                        city="New York", consents=CONSENTS)
        call_list = crm.create_call_list(session, name="New York evening", product="family-plan",
                                         purpose="marketing", audience={"cities": ["New York"]}, weights={},
                                         interest_days=30, recall_hours=48, agent_capacity=20, now=CLOCK)
        crm.extract_leads(session, call_list_id=call_list.id, now=CLOCK)
        pooled = session.scalar(sa.select(sa.func.count()).select_from(Lead).where(Lead.call_list_id == call_list.id))
        session.commit()
    staff(committed_engine, "li.na", "agent", pii=True)
    log_in(page, live_server, "li.na", "/console/agent")
    page.select_option("#call_list_id", label="New York evening · family-plan")
    page.click("text=Next lead")
    flash = page.locator(".flash")
    expect(flash).to_contain_text(f"No lead may be called right now: {pooled} held back")
    expect(flash).to_contain_text(f"quiet hours in the member's time: {pooled}")
    expect(flash).to_contain_text("The first becomes callable at")
    with Session(committed_engine) as session:  # nothing was handed out: the leads wait in the pool
        states = session.scalars(sa.select(Lead.state).where(Lead.call_list_id == call_list.id)).all()
    assert pooled == 3 and set(states) == {"pooled"}


def test_an_agent_without_the_pii_right_never_sees_a_full_phone(live_server, browser_page, committed_engine):
    page = browser_page
    wang, others, list_id = seed_call_center(committed_engine)
    staff(committed_engine, "wu.qiang", "agent", pii=False)
    log_in(page, live_server, "wu.qiang", "/console/agent")
    page.fill("#phone", "+86 138 0013 8000")
    page.click("text=Find member")
    expect(page.get_by_test_id("phone")).to_contain_text("+86138****8000")
    page.click("text=Next lead")
    expect(page.locator(".flash")).to_contain_text("Lead #")
    for html in (page.content(),):
        digits = re.sub(r"\D", "", html)
        for member in [wang, *others]:
            assert member.phone[1:] not in digits, "a full phone number reached the page"
    with Session(committed_engine) as session:
        logged = session.scalar(sa.text("SELECT count(*) FROM access_log WHERE agent_id = 'wu.qiang'"))
    assert logged >= 2  # the lookup and the lead's member


def test_an_agent_searches_members_by_lifecycle_stage_with_phones_masked(live_server, browser_page, committed_engine):
    from domain.lifecycle import service as lifecycle

    page = browser_page
    wang, others, _ = seed_call_center(committed_engine)
    with unit_of_work(committed_engine) as session:
        fading = make_member(session, now=CLOCK - timedelta(days=250), name="Sun Li", city="Nanjing",
                             consents=CONSENTS)
        lifecycle.refresh_lifecycle(session, as_of=CLOCK, member_range=(wang.id, fading.id))
        session.commit()
    staff(committed_engine, "wu.qiang", "agent", pii=False)
    log_in(page, live_server, "wu.qiang", "/console/agent")
    page.click("text=Member search")
    page.select_option("#lifecycle_stage", "decline")
    page.click("form[data-drop-empty] button[type=submit]")  # empty filters stay out of the link (else a 422)
    expect(page).to_have_url(re.compile(r"/console/agent/members\?lifecycle_stage=decline$"))
    table = page.get_by_test_id("members")
    expect(table).to_contain_text("Sun Li")
    expect(table).not_to_contain_text("Wang Fang")  # bought 40 days ago: not in decline
    expect(table).to_contain_text("****")
    screenshot(page, "agent-member-search")


def test_a_supervisor_sees_call_list_progress_recalls_leads_and_reads_the_access_log(live_server, browser_page,
                                                                                     committed_engine):
    page = browser_page
    _, others, list_id = seed_call_center(committed_engine)
    now = CLOCK
    with unit_of_work(committed_engine) as session:
        for agent, outcome in (("li.na", "accepted"), ("li.na", "declined"), ("wu.qiang", "no_answer")):
            lead = crm.next_lead(session, call_list_id=list_id, agent_id=agent, now=now)
            crm.record_call_outcome(session, member_id=lead.member_id, agent_id=agent, outcome=outcome, note="",
                                    callback_at=None, lead_id=lead.id, now=now)
        crm.next_lead(session, call_list_id=list_id, agent_id="wu.qiang", now=now)
        for minutes, (agent, member, action, reason) in enumerate([
                ("li.na", others[0], "crm.lookup", "inbound call"),
                ("wu.qiang", others[1], "crm.lookup", "outbound call"),
                ("li.na", others[2], "member.search", "complaint follow-up"),
                ("wu.qiang", others[3], "crm.lookup", "outbound call")]):
            record_access(session, api_key_name=None, agent_id=agent, staff_id=None, member_id=member.id,
                          action=action, reason=reason, now=now - timedelta(minutes=5 * minutes + 3))
        session.commit()
    staff(committed_engine, "zhou.supervisor", "supervisor", pii=True)
    log_in(page, live_server, "zhou.supervisor", "/console/supervisor")
    expect(page.locator("td", has_text="Family plan — spring")).to_be_visible()
    screenshot(page, "supervisor-call-lists")
    page.click("text=Family plan — spring")
    expect(page.locator("text=Excluded at extraction, by reason")).to_be_visible()
    expect(page.locator("td", has_text="a complaint in the last 90 days")).to_be_visible()
    screenshot(page, "supervisor-call-list")
    page.click("button:has-text('Recall')")
    expect(page.locator(".flash")).to_have_text("Leads recalled to the pool.")
    page.click("text=Access log")
    expect(page.locator("td", has_text="complaint follow-up")).to_be_visible()
    screenshot(page, "supervisor-access-log")


def test_a_marketer_creates_previews_approves_with_a_second_login_launches_and_sees_the_report(
        live_server, browser_page, committed_engine):
    page = browser_page
    seed_call_center(committed_engine)
    cities = ["Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu"]
    with unit_of_work(committed_engine) as session:
        for i in range(60):
            make_member(session, now=CLOCK - timedelta(days=200 + i), name=f"Member {i}", city=cities[i % 5],
                        consents=CONSENTS)
        # Every consent profile, and one who complained: the preview says what the gate would do with each.
        for i, consents in enumerate([{ContactChannel.EMAIL: True}, {ContactChannel.APP: True},
                                      {ContactChannel.WECHAT: True}, {}]):
            make_member(session, now=CLOCK - timedelta(days=300), name=f"Profile {i}", consents=consents)
        unhappy = make_member(session, now=CLOCK - timedelta(days=300), name="Unhappy", consents=CONSENTS)
        gate.record_complaint(session, member_id=unhappy.id, category="service", note="", actor="t",
                              now=CLOCK - timedelta(days=3))
        session.commit()
    staff(committed_engine, "sun.marketer", "marketer")
    staff(committed_engine, "he.approver", "marketer")
    log_in(page, live_server, "sun.marketer", "/console/marketer")
    page.fill("#name", "Spring family offer")
    page.select_option("#template", "comeback_offer")
    expect(page.locator("#body")).to_have_value(re.compile("double points"))
    page.check("input[name=tiers][value=D]")
    page.fill("#control_share", "0.3")
    page.click("text=Create draft")
    expect(page.get_by_test_id("status")).to_have_text("draft")
    expect(page.get_by_test_id("audience-size")).not_to_have_text("0")
    with Session(committed_engine) as session:
        drafted = session.exec(select(Campaign)).one()
        gate_now = campaigns.preview(session, campaign_id=drafted.id, now=CLOCK)["gate_now"]
    assert gate_now["approved"] > 0 and gate_now["by_reason"]["complaint_cooldown"] >= 1  # ours and the seed's
    expect(page.get_by_test_id("gate-allows")).to_have_text(str(gate_now["approved"]))
    expect(page.get_by_test_id("gate-rejects")).to_have_text(str(gate_now["rejected"]))
    expect(page.locator("td", has_text="a complaint in the last 90 days")).to_be_visible()
    screenshot(page, "marketer-campaign-preview")

    page.fill("#approver", "sun.marketer")       # the author cannot approve their own campaign
    page.fill("#approver_password", PASSWORD)
    page.click("text=Approve campaign")
    expect(page.locator(".flash.error")).to_contain_text("second person")
    page.fill("#approver", "he.approver")
    page.fill("#approver_password", PASSWORD)
    page.click("text=Approve campaign")
    expect(page.get_by_test_id("status")).to_have_text("approved")
    page.click("text=Launch campaign")
    expect(page.get_by_test_id("status")).to_have_text("launched")

    with unit_of_work(committed_engine) as session:
        campaign = session.exec(select(Campaign)).one()
        assert (campaign.created_by, campaign.approved_by) == ("staff:sun.marketer", "staff:he.approver")
        audience = session.execute(sa.text("SELECT member_id, control FROM campaign_members")).all()
        treated = [m for m, control in audience if not control]
        held_out = [m for m, control in audience if control]
        buyers = treated[: len(treated) * 3 // 10] + held_out[: max(1, len(held_out) // 8)]
        for member_id in buyers:
            make_order(session, member_id=member_id, amount_fen=39_900, now=campaign.launched_at + timedelta(hours=1),
                       occurred_at=campaign.launched_at + timedelta(minutes=30))
        session.commit()
    page.reload()
    report = page.get_by_test_id("report")
    expect(report.locator("svg")).to_be_visible()
    expect(report).to_contain_text("Treatment")
    expect(report).to_contain_text("Uplift, 95% interval")
    screenshot(page, "marketer-campaign-report")
    page.click("text=Campaigns")
    expect(page.locator("td a", has_text="Spring family offer")).to_be_visible()
    screenshot(page, "marketer-campaigns")


def test_a_marketer_sees_journeys_and_the_gates_suppressions_over_time(live_server, browser_page, committed_engine):
    page = browser_page
    now = CLOCK
    with unit_of_work(committed_engine) as session:
        people = [make_member(session, now=now - timedelta(days=300), consents={ContactChannel.SMS: True})
                  for _ in range(6)]
        gate.record_complaint(session, member_id=people[0].id, category="billing", note="", actor="x",
                              now=now - timedelta(days=6))
        for day in range(6):
            for i, member in enumerate(people):
                gate.request_touch(session, member_id=member.id, channel="sms" if i % 2 else "phone",
                                   purpose="marketing", source="t", idempotency_key=f"{day}:{i}", template="offer",
                                   variables={}, now=now - timedelta(days=day, hours=2))
        session.commit()
    with unit_of_work(committed_engine) as session:
        newcomers = [make_member(session, now=now - timedelta(days=2), consents={ContactChannel.SMS: True})
                     for _ in range(60)]
        session.commit()
    staff(committed_engine, "sun.marketer", "marketer")
    log_in(page, live_server, "sun.marketer", "/console/marketer")
    page.click("text=Gate suppressions")
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("td", has_text="a complaint in the last 90 days")).to_be_visible()
    screenshot(page, "marketer-gate-suppressions")
    page.click("text=Journeys")
    page.select_option("#blueprint", "welcome")  # a new journey from a built-in one, with a bigger control group
    page.fill("#jkey", "spring-welcome")
    page.fill("#jname", "Spring welcome")
    page.fill("#jcontrol", "0.3")
    page.click("text=Create journey")
    expect(page.locator("h1")).to_have_text("Journey: Spring welcome")
    with unit_of_work(committed_engine) as session:  # the jobs enroll the newcomers and run day 0; some buy
        journeys.enroll_new_members(session, as_of=now)
        journeys.run_due_steps(session, as_of=now)
        for member in newcomers[::3]:
            make_order(session, member_id=member.id, amount_fen=12_800, occurred_at=now + timedelta(hours=1),
                       now=now + timedelta(hours=1))
        journeys.record_conversions(session, as_of=now + timedelta(hours=2))
        session.commit()
    page.reload()
    expect(page.locator("svg.chart")).to_contain_text("Treatment")
    screenshot(page, "marketer-journey")


def test_an_operator_sees_job_runs_failures_first(live_server, browser_page, committed_engine):
    page = browser_page
    now = CLOCK
    with unit_of_work(committed_engine) as session:
        for i, (job, status, error) in enumerate([
                ("release-points", JobRunStatus.SUCCEEDED, None), ("expire-points", JobRunStatus.SUCCEEDED, None),
                ("tier-evaluation", JobRunStatus.FAILED, "OperationalError: server closed the connection"),
                ("settle-rebates", JobRunStatus.SUCCEEDED, None), ("dispatch-outbox", JobRunStatus.SKIPPED, None)]):
            start = now - timedelta(hours=5 - i)
            session.add(JobRun(job=job, as_of=start, trigger="schedule", status=status, host="jobs-1", pid=4242,
                               started_at=start, finished_at=start + timedelta(seconds=7 + i),
                               counts={} if error else {"members": 1200 * (i + 1)}, error=error))
        session.commit()
    staff(committed_engine, "ops.gao", "operator")
    log_in(page, live_server, "ops.gao", "/console/operator")
    failures = page.locator(".card", has_text="Failures")
    expect(failures.locator("tr.failed")).to_have_count(1)
    expect(failures).to_contain_text("tier-evaluation")
    screenshot(page, "operator-job-runs")
    page.goto(f"{live_server}/console/marketer")  # an operator is not a marketer
    assert "may not open this page" in page.content()


def test_the_api_docs_load_without_a_cdn(live_server, browser_page):
    page = browser_page
    outside: list[str] = []  # what the browser actually fetched from another host (ReDoc's bundle asks for a logo
    # on its CDN; the pages' Content-Security-Policy stops that request before it leaves the browser)
    page.on("requestfinished", lambda r: outside.append(r.url)
            if r.url.startswith(("http:", "https:", "ws:")) and not r.url.startswith(live_server) else None)
    page.goto(f"{live_server}/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("Loyalty")
    screenshot(page, "api-docs")
    page.goto(f"{live_server}/redoc")
    expect(page.locator("h1", has_text="Loyalty")).to_be_visible()
    assert outside == []
