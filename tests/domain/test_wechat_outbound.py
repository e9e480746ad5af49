"""The WeChat adapter with the real wechatpy client against a fake WeChat API on loopback."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import Barrier

import pytest
from sqlmodel import Session, select

from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.members.models import ContactChannel
from domain.settings import Settings
from domain.touchpoints.models import Touch, TouchStatus
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


def test_two_processes_share_one_token(committed_engine):
    with fake_wechat() as (base, fake):
        barrier = Barrier(4)

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
