"""The WeChat adapter with the real wechatpy client against a fake WeChat API on loopback."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlmodel import Session, select

from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.members.models import ContactChannel
from domain.settings import Settings
from domain.touchpoints.models import Touch, TouchStatus
from domain.wechat import service as wechat_service
from integrations.wechat.adapter import WeChatAdapter
from integrations.wechat.client import LoyaltyWeChatClient
from jobs.dispatch import dispatch_due
from tests.factories import make_member
from tests.fakes.wechat_server import fake_wechat

NOW = datetime.fromtimestamp(int(time.time()), UTC).replace(hour=4)  # noon in Shanghai, today
SETTINGS = Settings(wechat_app_id="wxapp", wechat_app_secret="s3cret",
                    wechat_templates={"points_earned": "TPL-POINTS"})


@pytest.fixture
def wechat(committed_engine):
    with fake_wechat() as (base, fake):
        client = LoyaltyWeChatClient("wxapp", "s3cret", engine=committed_engine, api_base_url=base, timeout=3)
        yield fake, WeChatAdapter(SETTINGS, committed_engine, client=client)


def queue(engine, openid, purpose="service", template="points_earned", n=1):
    with unit_of_work(engine) as session:
        member = make_member(session, wechat_openid=openid, now=datetime(2025, 1, 1, tzinfo=UTC),
                             consents={ContactChannel.WECHAT: True})
        for i in range(n):
            gate.request_touch(session, member_id=member.id, channel="wechat", purpose=purpose, source="t",
                               idempotency_key=f"{openid}-{i}", template=template,
                               variables={"body": "You earned 120 points", "points": 120}, now=NOW)
        session.commit()
        return member


def test_a_template_send_reaches_wechat_once_per_touch(committed_engine, wechat):
    fake, adapter = wechat
    queue(committed_engine, "o-1", n=3)
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["sent"] == 3
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["sent"] == 0
    sends = [b for path, b in fake.calls if path.endswith("template/send")]
    assert len(sends) == 3 and {b["template_id"] for b in sends} == {"TPL-POINTS"}
    assert len({b["client_msg_id"] for b in sends}) == 3  # WeChat's own dedupe key per touch
    assert fake.token_requests == 1


def test_a_token_invalidated_mid_run_is_refreshed_once_and_the_call_retried_once(committed_engine, wechat):
    fake, adapter = wechat
    queue(committed_engine, "o-2", n=2)
    dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW, batch=1, max_batches=1)
    fake.rotate()
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["sent"] == 1
    assert fake.token_requests == 2


def test_the_daily_quota_defers_sends_by_an_hour_without_failing_or_doubling_them(committed_engine, wechat):
    fake, adapter = wechat
    fake.template_quota = 1
    queue(committed_engine, "o-busy", n=3)
    counts = dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)
    assert counts["sent"] == 1 and counts["retry"] == 2 and counts["failed"] == 0
    with Session(committed_engine) as session:
        waiting = session.exec(select(Touch).where(Touch.status == TouchStatus.QUEUED)).all()
        assert {t.next_attempt_at for t in waiting} == {NOW + timedelta(hours=1)}
        assert {t.last_error for t in waiting} == {"wechat 45009: reach max api daily quota limit"}
    fake.template_quota = None  # WeChat's quota was raised (or the day turned)
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW + timedelta(minutes=59))["sent"] == 0
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW + timedelta(hours=1))["sent"] == 2
    sends = [b["client_msg_id"] for path, b in fake.calls if path.endswith("template/send")]
    assert len(sends) == 5 and len(set(sends)) == 3  # the two refused sends were tried again, once


def test_two_processes_share_one_token(committed_engine):
    with fake_wechat() as (base, fake):
        barrier = Barrier(4, timeout=60)

        def call(_):
            client = LoyaltyWeChatClient("wxapp", "s3cret", engine=committed_engine, api_base_url=base, timeout=3)
            barrier.wait()
            return client.access_token

        with ThreadPoolExecutor(4) as pool:
            tokens = set(pool.map(call, range(4)))
    assert len(tokens) == 1 and fake.token_requests == 1


def test_marketing_goes_as_a_customer_service_message_and_fails_outside_the_window(committed_engine, wechat):
    fake, adapter = wechat
    queue(committed_engine, "o-quiet", purpose="care", template="birthday")
    fake.last_interaction["o-chatty"] = time.time() - 3600
    queue(committed_engine, "o-chatty", purpose="care", template="birthday")
    counts = dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)
    assert counts["sent"] == 1 and counts["failed"] == 1
    assert not any(path.endswith("template/send") for path, _ in fake.calls)  # never a template for care
    with Session(committed_engine) as session:
        failed = session.exec(select(Touch).where(Touch.status == TouchStatus.FAILED)).one()
        assert failed.last_error == "outside_interaction_window"


def test_an_unfollowed_user_is_a_permanent_failure_with_its_reason(committed_engine, wechat):
    fake, adapter = wechat
    fake.unfollowed.add("o-gone")
    queue(committed_engine, "o-gone")
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["failed"] == 1
    with Session(committed_engine) as session:
        touch = session.exec(select(Touch)).one()
        assert touch.last_error == "wechat_unsubscribed"
        decision = gate.evaluate_contact(session, member_id=touch.member_id, channel="wechat", purpose="service",
                                         now=NOW)
        assert decision.reasons == ("channel_unreachable",)  # the gate stops WeChat touches from now on


def test_without_credentials_the_adapter_records_what_it_would_send(committed_engine):
    adapter = WeChatAdapter(Settings(), committed_engine)
    queue(committed_engine, "o-local")
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["sent"] == 1
    assert adapter.local and adapter.sent_locally[0].address == {"openid": "o-local"}


def test_the_menu_is_published_and_qr_codes_made_from_the_command_line(committed_engine, monkeypatch):
    import json

    from click.testing import CliRunner

    from cli.main import main
    from domain.settings import get_settings

    with fake_wechat() as (base, fake):
        settings = get_settings()
        for name, value in (("wechat_app_id", "wxapp"), ("wechat_app_secret", "s3cret"), ("wechat_api_base_url", base)):
            monkeypatch.setattr(settings, name, value)
        pushed = CliRunner().invoke(main, ["wechat", "menu", "push"])
        made = CliRunner().invoke(main, ["wechat", "qrcode", "create", "store42"])
    assert pushed.exit_code == 0, pushed.output
    keys = [b["key"] for b in fake.menu["button"][0]["sub_button"]]
    assert keys == ["MY_POINTS", "MY_TIER", "MY_COUPONS", "MY_REP"]
    assert made.exit_code == 0 and json.loads(made.stdout)["ticket"] == "TICKET-store42"


SUBSCRIBING = Settings(wechat_app_id="wxapp", wechat_app_secret="s3cret",
                       wechat_templates={"points_earned": "TPL-POINTS"},
                       wechat_subscription_templates={"points_earned": "SUB-POINTS", "coupon_issued": "SUB-COUPON"})


def grant(engine, fake, openid, template_id, n=1):
    """The follower accepts the template n times in WeChat's popup: WeChat and our callback both know it."""
    from domain.wechat.service import Inbound, handle_callback

    for i in range(n):
        fake.grant(openid, template_id)
        with unit_of_work(engine) as session:
            handle_callback(session, inbound=Inbound(
                msg_type="event", event="subscribe_msg_popup_event", openid=openid, create_time=1_772_000_000 + i,
                items=({"TemplateId": template_id, "SubscribeStatusString": "accept"},)), now=NOW)
            session.commit()


@pytest.fixture
def subscribing(committed_engine, monkeypatch):
    from domain.settings import get_settings

    monkeypatch.setattr(get_settings(), "wechat_subscription_templates", SUBSCRIBING.wechat_subscription_templates)
    with fake_wechat() as (base, fake):
        client = LoyaltyWeChatClient("wxapp", "s3cret", engine=committed_engine, api_base_url=base, timeout=3)
        yield fake, WeChatAdapter(SUBSCRIBING, committed_engine, client=client)


def test_a_granted_notice_goes_as_a_subscription_message_once_per_grant(committed_engine, subscribing):
    fake, adapter = subscribing
    grant(committed_engine, fake, "o-granted", "SUB-POINTS")
    queue(committed_engine, "o-granted", n=2)
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["sent"] == 2
    paths = [path for path, _ in fake.calls]
    # One grant, one subscription message; the second notice falls back to the template message.
    assert paths.count("/cgi-bin/message/subscribe/bizsend") == 1 and paths.count("/cgi-bin/message/template/send") == 1
    with Session(committed_engine) as session:
        assert wechat_service.open_subscription_grants(session, openid="o-granted", template_id="SUB-POINTS") == 0


def test_without_a_grant_a_subscription_only_notice_is_not_sent(committed_engine, subscribing):
    fake, adapter = subscribing
    queue(committed_engine, "o-nogrant", template="coupon_issued")
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["failed"] == 1
    assert not any(path.endswith("bizsend") for path, _ in fake.calls)  # WeChat is not even asked
    with Session(committed_engine) as session:
        assert session.exec(select(Touch)).one().last_error == "no_subscription_grant"


def test_a_grant_wechat_no_longer_honours_is_a_permanent_failure(committed_engine, subscribing):
    fake, adapter = subscribing
    grant(committed_engine, fake, "o-revoked", "SUB-COUPON")
    fake.subscription_grants.clear()  # the follower turned the notice off in WeChat; we missed the event
    queue(committed_engine, "o-revoked", template="coupon_issued")
    assert dispatch_due(committed_engine, adapters={"wechat": adapter}, now=NOW)["failed"] == 1
    with Session(committed_engine) as session:
        assert session.exec(select(Touch)).one().last_error == "subscription_refused"


def test_concurrent_touches_never_spend_one_grant_twice(committed_engine, subscribing):
    fake, _ = subscribing
    grant(committed_engine, fake, "o-race", "SUB-POINTS", n=2)
    barrier = Barrier(6, timeout=60)

    def spend(i):
        with unit_of_work(committed_engine) as session:
            barrier.wait()
            ok = wechat_service.reserve_subscription_grant(session, openid="o-race", template_id="SUB-POINTS",
                                                           key=f"touch-{i}", now=NOW)
            session.commit()
            return ok

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(spend, range(6)))
    assert results.count(True) == 2
    with unit_of_work(committed_engine) as session:  # a retried touch finds the grant it already holds
        winner = results.index(True)
        assert wechat_service.reserve_subscription_grant(session, openid="o-race", template_id="SUB-POINTS",
                                                         key=f"touch-{winner}", now=NOW)
