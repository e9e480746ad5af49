"""The unionid-linking job: WeChat's user API (real wechatpy client, fake server on loopback) and the
links it makes between followers and members."""

import time
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from domain.db import unit_of_work
from domain.members.models import Member
from domain.wechat.models import Follower
from domain.wechat.service import Inbound, handle_callback
from integrations.wechat.client import LoyaltyWeChatClient
from jobs.runner import run_job
from tests.factories import make_member
from tests.fakes.wechat_server import fake_wechat

NOW = datetime.fromtimestamp(int(time.time()), UTC)


def follow(engine, openid: str, at: int) -> int:
    with unit_of_work(engine) as session:
        handle_callback(session, inbound=Inbound(msg_type="event", event="subscribe", openid=openid, create_time=at),
                        now=NOW)
        session.commit()
        return session.exec(select(Member.id).where(Member.wechat_openid == openid)).one()


def test_followers_are_linked_by_unionid_and_a_known_customer_absorbs_the_prospect(committed_engine):
    with unit_of_work(committed_engine) as session:
        known = make_member(session, phone="13800138111", wechat_unionid="u-known")  # from the shop's mini-program
        session.commit()
    prospect_of_known = follow(committed_engine, "o-known", 1)
    new_follower = follow(committed_engine, "o-new", 2)
    no_unionid = follow(committed_engine, "o-plain", 3)
    follow(committed_engine, "o-vanished", 4)  # WeChat no longer knows this openid (40003)
    with fake_wechat() as (base, fake):
        fake.users.update({"o-known": {"unionid": "u-known"}, "o-new": {"unionid": "u-new"}, "o-plain": {}})
        client = LoyaltyWeChatClient("wxapp", "s3cret", engine=committed_engine, api_base_url=base, timeout=3)
        outcome = run_job("link-wechat-unionids", engine=committed_engine, as_of=NOW,
                          options={"wechat_client": client})
        assert outcome.counts == {"linked": 1, "merged": 1, "conflicts": 0, "without_unionid": 2}
        asked = [path for path, _ in fake.calls]
        # The batch was refused for the unknown openid, so each was asked on its own.
        assert asked.count("/cgi-bin/user/info/batchget") == 1 and asked.count("/cgi-bin/user/info") == 4
        again = run_job("link-wechat-unionids", engine=committed_engine, as_of=NOW + timedelta(hours=1),
                        options={"wechat_client": client})
        assert again.counts == {"linked": 0, "merged": 0, "conflicts": 0, "without_unionid": 0}  # nothing re-asked
        later = run_job("link-wechat-unionids", engine=committed_engine, as_of=NOW + timedelta(days=8),
                        options={"wechat_client": client})
        assert later.counts["without_unionid"] == 2  # asked again after a week: they may have got one since
    with Session(committed_engine) as session:
        assert session.get(Member, known.id).wechat_openid == "o-known"
        assert session.get(Member, prospect_of_known).status == "closed"
        assert session.get(Follower, "o-known").member_id == known.id
        assert session.get(Member, new_follower).wechat_unionid == "u-new"
        assert session.get(Member, no_unionid).wechat_unionid is None


def test_two_real_members_sharing_a_unionid_are_left_for_an_agent(committed_engine):
    with unit_of_work(committed_engine) as session:
        make_member(session, phone="13800138112", wechat_unionid="u-twice")
        follower = make_member(session, phone="13800138113", wechat_openid="o-twice")
        session.add(Follower(openid="o-twice", member_id=follower.id, subscribed=True, subscribed_at=NOW))
        session.commit()
    with fake_wechat() as (base, fake):
        fake.users["o-twice"] = {"unionid": "u-twice"}
        client = LoyaltyWeChatClient("wxapp", "s3cret", engine=committed_engine, api_base_url=base, timeout=3)
        outcome = run_job("link-wechat-unionids", engine=committed_engine, as_of=NOW,
                          options={"wechat_client": client})
    assert outcome.counts["conflicts"] == 1
    with Session(committed_engine) as session:
        assert session.get(Member, follower.id).status == "active" and session.get(Member, follower.id).wechat_unionid \
            is None


def test_without_credentials_the_job_does_nothing_and_says_so(committed_engine):
    assert run_job("link-wechat-unionids", engine=committed_engine, as_of=NOW).counts == {
        "skipped": "wechat_not_configured"}
