from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import Barrier

import pytest
from sqlmodel import select

from domain.db import unit_of_work
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events.models import DomainEvent
from domain.members import service
from domain.members.models import ConsentStatus, ContactChannel, Member, MemberStatus, SourceChannel
from tests.factories import make_member, next_phone

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_joining_member_starts_at_d_with_attribution_and_a_code(session):
    member = make_member(session, phone="13800138000", source_channel=SourceChannel.WECHAT,
                         source_campaign="spring26", now=NOW)
    assert member.tier == "D"
    assert member.status == MemberStatus.ACTIVE
    assert member.phone == "+8613800138000"
    assert member.member_code.startswith("WX-SPRING26-20261122-")
    events = session.exec(select(DomainEvent).where(DomainEvent.member_id == member.id)).all()
    assert [e.kind for e in events] == ["member.joined"]


def test_member_code_date_is_the_join_day_in_the_members_timezone(session):
    late_evening_utc = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # 01:00 on the 22nd in Shanghai
    member = make_member(session, now=late_evening_utc)
    assert "-20261122-" in member.member_code


def test_a_second_member_with_the_same_phone_is_a_conflict_naming_the_first(session):
    first = make_member(session, phone="+86 138-0013-8000")
    with pytest.raises(Conflict) as err:
        make_member(session, phone="13800138000")
    assert err.value.code == "phone_taken"
    assert err.value.details["member_id"] == first.id


def test_member_from_a_wechat_follow_is_a_prospect_until_they_bind_a_phone(session):
    member = make_member(session, phone=None, wechat_openid="o-abc", source_channel=SourceChannel.WECHAT)
    assert member.status == MemberStatus.PROSPECT
    service.update_member(session, member_id=member.id, changes={"phone": "13800138001"}, now=NOW)
    assert member.status == MemberStatus.ACTIVE


@pytest.mark.parametrize("key", ["phone", "openid", "unionid", "code", "external"])
def test_member_is_found_by_each_identity_key(session, key):
    member = make_member(session, wechat_openid="o-1", wechat_unionid="u-1", external_ids={"pos": "P-77"})
    value = {"phone": member.phone, "openid": "o-1", "unionid": "u-1", "code": member.member_code,
             "external": ("pos", "P-77")}[key]
    assert service.lookup_member(session, **{key: value}).id == member.id


def test_lookup_of_an_unknown_key_is_not_found_and_of_no_key_is_invalid(session):
    with pytest.raises(NotFound):
        service.lookup_member(session, phone="13800138999")
    with pytest.raises(InvalidInput):
        service.lookup_member(session)


def test_a_phone_cannot_move_onto_another_members_number(session):
    a = make_member(session)
    b = make_member(session)
    with pytest.raises(Conflict):
        service.update_member(session, member_id=b.id, changes={"phone": a.phone}, now=NOW)


def test_an_opt_out_is_recorded_with_who_and_when(session):
    member = make_member(session, consents={ContactChannel.SMS: True})
    service.set_consent(session, member_id=member.id, channel=ContactChannel.SMS, granted=False,
                        source="agent-7", now=NOW)
    assert service.consents_of(session, member_id=member.id) == {ContactChannel.SMS: ConsentStatus.OPTED_OUT}


def test_closing_keeps_the_member_and_refuses_later_updates(session):
    member = make_member(session)
    service.close_member(session, member_id=member.id, reason="asked to leave", actor="admin", now=NOW)
    assert session.get(Member, member.id).status == MemberStatus.CLOSED
    with pytest.raises(Conflict):
        service.update_member(session, member_id=member.id, changes={"name": "x"}, now=NOW)


def test_concurrent_joins_with_one_phone_make_exactly_one_member(committed_engine):
    phone = next_phone()
    attempts = 8
    barrier = Barrier(attempts, timeout=60)

    def join(_: int) -> str:
        with unit_of_work(committed_engine) as session:
            barrier.wait()
            try:
                service.join_member(session, new=service.NewMember(source_channel=SourceChannel.APP, phone=phone),
                                    actor="race", now=NOW)
                session.commit()
                return "created"
            except Conflict as exc:
                assert exc.code == "phone_taken" and exc.details["member_id"]
                return "conflict"

    with ThreadPoolExecutor(attempts) as pool:
        outcomes = list(pool.map(join, range(attempts)))
    assert outcomes.count("created") == 1
    assert outcomes.count("conflict") == attempts - 1
    with unit_of_work(committed_engine) as session:
        assert len(session.exec(select(Member).where(Member.phone == phone)).all()) == 1


def test_an_unreachable_channel_is_reported_until_it_is_reachable_again(session):
    member = make_member(session)
    service.set_channel_reachability(session, member_id=member.id, channel=ContactChannel.WECHAT, reachable=False,
                                     reason="wechat_unsubscribed", now=NOW)
    assert service.unreachable_channels(session, member_id=member.id) == {ContactChannel.WECHAT: "wechat_unsubscribed"}
    service.set_channel_reachability(session, member_id=member.id, channel=ContactChannel.WECHAT, reachable=True,
                                     reason="wechat_subscribed", now=NOW)
    assert service.unreachable_channels(session, member_id=member.id) == {}
