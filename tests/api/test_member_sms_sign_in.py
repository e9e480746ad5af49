"""Member sign-in by phone + SMS code, over HTTP, with the SMS gateway a fake server on loopback."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlmodel import Session, select

from api.deps import get_now
from domain.errors import TooSoon
from domain.member_sessions.models import SignInCode
from domain.member_sessions.service import issue_sign_in_code
from domain.members.models import Member
from domain.settings import get_settings
from tests.factories import make_member
from tests.fakes.webhook_server import webhook_gateway

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


@pytest.fixture
def sms(monkeypatch):
    """The SMS gateway on loopback: the codes people are sent arrive here."""
    with webhook_gateway([200]) as (url, gateway):
        monkeypatch.setattr(get_settings(), "webhook_urls", {"sms": url})
        yield gateway


def at(client, moment: datetime) -> None:
    client.app.dependency_overrides[get_now] = lambda: moment


def ask(client, phone: str):
    return client.post("/v1/me/sessions/sms-code", json={"phone": phone})


def code_sent(sms) -> str:
    return str(sms.received[-1]["body"]["variables"]["code"])


def sign_in(client, phone: str, code: str):
    return client.post("/v1/me/sessions/sms", json={"phone": phone, "code": code})


def test_a_member_signs_in_with_the_code_sent_to_their_phone_and_reads_only_their_own_record(app_client, session,
                                                                                           sms):
    member = make_member(session, phone="13800138000", name="Li")
    make_member(session, phone="13800138001")
    asked = ask(app_client, "+86 138 0013 8000")
    assert asked.status_code == 202, asked.text
    assert asked.json() == {"sent_to": "+86138****8000", "expires_in_seconds": 300}
    assert sms.received[-1]["body"]["address"] == {"phone": "+8613800138000"}
    code = code_sent(sms)
    stored = session.exec(select(SignInCode)).one()
    assert code not in (stored.code_hash, stored.salt) and len(stored.code_hash) == 64  # only a digest is kept

    signed = sign_in(app_client, "13800138000", code)
    assert signed.status_code == 201, signed.text
    assert signed.json()["member_id"] == member.id
    me = app_client.get("/v1/me", headers={"Authorization": f"Bearer {signed.json()['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == member.id and me.json()["name"] == "Li"
    refreshed = app_client.post("/v1/me/sessions/refresh", json={"refresh_token": signed.json()["refresh_token"]})
    assert refreshed.status_code == 200
    again = sign_in(app_client, "13800138000", code)  # a code works once
    assert (again.status_code, again.json()["error"]["code"]) == (403, "code_required")


def test_an_unknown_phone_is_enrolled_by_its_code(app_client, session, sms):
    at(app_client, T0)
    assert ask(app_client, "13900139000").status_code == 202
    signed = sign_in(app_client, "13900139000", code_sent(sms))
    assert signed.status_code == 201, signed.text
    member = session.get(Member, signed.json()["member_id"])
    assert member is not None
    assert (member.phone, member.source_channel, member.status) == ("+8613900139000", "app", "active")


def test_wrong_codes_are_counted_per_phone_across_resends_and_then_even_the_right_one_is_refused(app_client, sms):
    phone = "13800138010"
    for n in range(5):  # a new code each minute cannot buy new guesses
        at(app_client, T0 + timedelta(minutes=n))
        assert ask(app_client, phone).status_code == 202
        real = code_sent(sms)
        wrong = sign_in(app_client, phone, "000000" if real != "000000" else "111111")
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "wrong_code")
        assert wrong.json()["error"]["details"]["attempts_left"] == 4 - n
    at(app_client, T0 + timedelta(minutes=6))
    refused = sign_in(app_client, phone, real)  # the newest code, still fresh and right
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "too_many_attempts")
    assert refused.headers["Retry-After"] == "3600"


def test_codes_are_limited_per_phone_and_per_client(app_client, sms, monkeypatch):
    settings = get_settings()
    at(app_client, T0)
    assert ask(app_client, "13800138020").status_code == 202
    soon = ask(app_client, "13800138020")
    assert (soon.status_code, soon.json()["error"]["code"]) == (429, "code_recently_sent")
    assert int(soon.headers["Retry-After"]) == 60
    for n in range(1, settings.member_sms_codes_per_phone_hour):
        at(app_client, T0 + timedelta(minutes=2 * n))
        assert ask(app_client, "13800138020").status_code == 202
    at(app_client, T0 + timedelta(minutes=30))
    flood = ask(app_client, "13800138020")
    assert (flood.status_code, flood.json()["error"]["code"]) == (429, "too_many_codes_for_phone")

    monkeypatch.setattr(settings, "member_sms_codes_per_client_hour", 7)  # this client has asked for 5 so far
    assert ask(app_client, "13800138021").status_code == 202
    assert ask(app_client, "13800138022").status_code == 202
    many = ask(app_client, "13800138023")
    assert (many.status_code, many.json()["error"]["code"]) == (429, "too_many_codes_for_client")
    assert len(sms.received) == 7


def test_a_code_is_only_good_for_its_minutes_and_only_the_newest_one_counts(app_client, sms):
    at(app_client, T0)
    assert ask(app_client, "13800138030").status_code == 202
    first = code_sent(sms)
    at(app_client, T0 + timedelta(minutes=2))
    assert ask(app_client, "13800138030").status_code == 202
    second = code_sent(sms)
    if first != second:
        assert sign_in(app_client, "13800138030", first).json()["error"]["code"] == "wrong_code"
    at(app_client, T0 + timedelta(minutes=8))
    late = sign_in(app_client, "13800138030", second)
    assert (late.status_code, late.json()["error"]["code"]) == (403, "code_expired")


def test_a_gateway_failure_leaves_no_code_and_counts_against_no_limit(app_client, session, sms):
    at(app_client, T0)
    sms.statuses[:] = [503]
    down = ask(app_client, "13800138040")
    assert (down.status_code, down.json()["error"]["code"]) == (503, "sms_unavailable")
    assert session.exec(select(SignInCode)).all() == []
    sms.statuses[:] = [200]
    assert ask(app_client, "13800138040").status_code == 202  # at once: the failed send left nothing


def test_bad_input_is_a_clear_4xx(app_client, sms):
    at(app_client, T0)
    assert ask(app_client, "12345").json()["error"]["code"] == "invalid_phone"
    assert sign_in(app_client, "13800138050", "12ab").status_code == 422
    none_sent = sign_in(app_client, "13800138050", "123456")
    assert (none_sent.status_code, none_sent.json()["error"]["code"]) == (403, "code_required")


def test_a_burst_of_code_requests_for_one_phone_sends_one_code(committed_engine):
    """Several real connections at once: the phone's lock makes the resend interval hold under a burst."""
    barrier = Barrier(8, timeout=30)

    def one(_: int) -> str:
        with Session(committed_engine) as session:
            barrier.wait()
            try:
                issue_sign_in_code(session, phone="13800138060", client="burst", now=T0)
            except TooSoon as exc:
                session.rollback()
                return exc.code
            session.commit()
            return "sent"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(one, range(8)))
    assert outcomes == ["code_recently_sent"] * 7 + ["sent"]
