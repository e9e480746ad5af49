"""WeChat's callback, driven with properly signed plaintext and AES payloads."""

import time
from datetime import UTC, datetime

import pytest
from sqlmodel import select
from wechatpy.crypto import WeChatCrypto

from api.deps import get_now
from domain.contact_policy import service as gate
from domain.events.models import DomainEvent
from domain.members.models import Member
from domain.settings import get_settings
from domain.touchpoints.models import Touch
from domain.wechat.models import Follower, SubscriptionGrant
from domain.wechat.rules import signature
from tests.factories import make_member, make_order

TOKEN = "loyalty-dev-token"
APP_ID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them


def signed(ts: int | None = None, nonce: str = "n0nce") -> dict[str, str]:
    ts_text = str(ts if ts is not None else int(time.time()))
    return {"signature": signature(TOKEN, ts_text, nonce), "timestamp": ts_text, "nonce": nonce}


def event_xml(openid: str, event: str, key: str = "", create_time: int = 1_772_000_000, extra: str = "") -> str:
    return (f"<xml><ToUserName><![CDATA[gh_loyalty]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey>{extra}</xml>")


def post(client, xml: str, params: dict[str, str] | None = None):
    return client.post("/wechat/callback", params=params or signed(), content=xml.encode())


def test_url_verification_echoes_only_for_wechats_signature(app_client):
    ok = app_client.get("/wechat/callback", params={**signed(), "echostr": "hello"})
    assert ok.status_code == 200 and ok.text == "hello"
    forged = app_client.get("/wechat/callback", params={**signed(), "signature": "0" * 40, "echostr": "hello"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_signature"


def test_a_forged_or_stale_callback_is_refused_and_nothing_is_processed(app_client, session):
    forged = post(app_client, event_xml("o-forged", "subscribe"), {**signed(), "signature": "f" * 40})
    stale = post(app_client, event_xml("o-stale", "subscribe"), signed(ts=int(time.time()) - 3600))
    assert forged.status_code == 403 and stale.status_code == 403
    assert stale.json()["error"]["code"] == "stale_request"
    assert session.exec(select(Member).where(Member.wechat_openid.in_(["o-forged", "o-stale"]))).all() == []


def test_malformed_xml_is_a_clean_400(app_client):
    response = post(app_client, "<xml><FromUserName>broken")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_message"


def test_a_follow_via_a_qr_code_creates_an_attributed_prospect_and_replies_welcome(app_client, session):
    response = post(app_client, event_xml("o-new", "subscribe", "qrscene_store42"))
    assert response.status_code == 200 and "Welcome" in response.text and "<xml>" in response.text
    member = session.exec(select(Member).where(Member.wechat_openid == "o-new")).one()
    assert (member.status, member.source_channel, member.source_campaign) == ("prospect", "wechat", "store42")
    assert member.member_code.startswith("WX-STORE42-")
    assert session.get(Follower, "o-new").qr_scene == "store42"
    kinds = [e.kind for e in session.exec(select(DomainEvent).where(DomainEvent.member_id == member.id))]
    assert "member.joined" in kinds  # the welcome journey starts from here


def test_a_retried_callback_is_processed_once(app_client, session):
    xml = event_xml("o-retry", "subscribe", "qrscene_c1", create_time=1_772_000_123)
    first = post(app_client, xml)
    retry = post(app_client, xml, signed(nonce="other"))
    assert "Welcome" in first.text and retry.text == "success"
    assert len(session.exec(select(Member).where(Member.wechat_openid == "o-retry")).all()) == 1


def test_unfollow_stops_wechat_touches_at_once_and_keeps_the_member(app_client, session):
    post(app_client, event_xml("o-leaver", "subscribe", create_time=1_772_000_001))
    member = session.exec(select(Member).where(Member.wechat_openid == "o-leaver")).one()
    assert post(app_client, event_xml("o-leaver", "unsubscribe", create_time=1_772_000_002)).text == "success"
    decision = gate.evaluate_contact(session, member_id=member.id, channel="wechat", purpose="service",
                                     now=datetime.now(UTC))
    assert decision.verdict == "rejected" and "channel_unreachable" in decision.reasons
    assert session.get(Member, member.id) is not None and not session.get(Follower, "o-leaver").subscribed


def test_a_scan_by_a_follower_is_recorded_and_attributes_only_an_unattributed_member(app_client, session):
    walk_in = make_member(session, wechat_openid="o-walkin", name="Wang")
    from_campaign = make_member(session, wechat_openid="o-campaign", name="Zhao", source_campaign="spring")
    # A follower's SCAN carries the bare scene in EventKey (no qrscene_ prefix, unlike a follow)
    assert post(app_client, event_xml("o-walkin", "SCAN", "store7", create_time=1_772_000_020)).text == "success"
    post(app_client, event_xml("o-campaign", "SCAN", "store7", create_time=1_772_000_021))
    post(app_client, event_xml("o-walkin", "SCAN", "rep-chen", create_time=1_772_000_022))
    session.expire_all()
    assert session.get(Member, walk_in.id).source_campaign == "store7"  # the first scan attributes
    assert session.get(Member, from_campaign.id).source_campaign == "spring"  # never overwritten
    follower = session.get(Follower, "o-walkin")
    assert (follower.member_id, follower.qr_scene, follower.last_interaction_kind) == (walk_in.id, "store7", "scan")


def test_menu_clicks_answer_from_the_members_data_or_invite_to_bind(app_client, session):
    member = make_member(session, wechat_openid="o-bound", name="Li")
    make_order(session, member_id=member.id, amount_fen=150_000, occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    app_client.app.dependency_overrides[get_now] = lambda: datetime.fromtimestamp(int(time.time()), UTC)
    points = post(app_client, event_xml("o-bound", "CLICK", "MY_POINTS", create_time=1_772_000_010))
    tier = post(app_client, event_xml("o-bound", "CLICK", "MY_TIER", create_time=1_772_000_011))
    stranger = post(app_client, event_xml("o-stranger", "CLICK", "MY_POINTS", create_time=1_772_000_012))
    assert "0 points available and 1500 pending" in points.text
    assert "You are a C member" in tier.text
    assert "/wechat/oauth/start" in stranger.text


def sent_touch(session, openid: str, provider_ref: str) -> Touch:
    """A WeChat notice already handed to WeChat, whose delivery report is still to come."""
    member = make_member(session, wechat_openid=openid)
    touch = Touch(member_id=member.id, channel="wechat", purpose="service", source="t", idempotency_key=provider_ref,
                  template="points_earned", decision="approved", status="sent", requested_at=datetime.now(UTC),
                  provider_ref=provider_ref)
    session.add(touch)
    session.commit()
    return touch


def test_a_template_delivery_report_is_stored_on_its_touch(app_client, session):
    touch = sent_touch(session, "o-t", "200163836")
    report = "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>"
    xml = event_xml("o-t", "TEMPLATESENDJOBFINISH", extra=report)
    assert post(app_client, xml).text == "success"
    session.refresh(touch)
    assert touch.delivery_status == "success"


@pytest.fixture
def aes_mode(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "wechat_app_id", APP_ID)
    monkeypatch.setattr(settings, "wechat_encoding_aes_key", AES_KEY)
    return WeChatCrypto(TOKEN, AES_KEY, APP_ID)


def test_safe_mode_messages_are_decrypted_and_replies_encrypted(app_client, aes_mode):
    params = signed()
    encrypted = aes_mode.encrypt_message(event_xml("o-aes", "subscribe", create_time=1_772_000_020), params["nonce"],
                                         params["timestamp"])
    import re

    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", encrypted).group(1)
    msg_signature = signature(TOKEN, params["timestamp"], params["nonce"], encrypt)
    response = post(app_client, encrypted, {**params, "encrypt_type": "aes", "msg_signature": msg_signature})
    assert response.status_code == 200
    reply = aes_mode.decrypt_message(response.text, re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>",
                                                              response.text).group(1), params["timestamp"],
                                     params["nonce"])
    assert "Welcome" in reply
    forged = post(app_client, encrypted, {**params, "encrypt_type": "aes", "msg_signature": "0" * 40})
    assert forged.status_code == 403


def test_a_rotated_aes_key_keeps_the_previous_one_valid(app_client, aes_mode, monkeypatch):
    settings = get_settings()
    new_key = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
    monkeypatch.setattr(settings, "wechat_encoding_aes_key", new_key)
    monkeypatch.setattr(settings, "wechat_previous_encoding_aes_key", AES_KEY)
    params = signed()
    encrypted = aes_mode.encrypt_message(event_xml("o-rot", "subscribe", create_time=1_772_000_030), params["nonce"],
                                         params["timestamp"])
    import re

    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", encrypted).group(1)
    response = post(app_client, encrypted, {**params, "encrypt_type": "aes",
                                            "msg_signature": signature(TOKEN, params["timestamp"], params["nonce"],
                                                                       encrypt)})
    assert response.status_code == 200 and "<Encrypt>" in response.text


# WeChat's published sample vector (WXBizMsgCrypt samples): token, EncodingAESKey, appid and a captured request.
SAMPLE = {"token": "QDG6eK", "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "appid": "wx5823bf96d3bd56c7",
          "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6", "timestamp": "1409659813",
          "nonce": "1372623149",
          "body": "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA["
                  "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3"
                  "W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ"
                  "+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSr"
                  "XJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m"
                  "3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt></xml>"}


def test_wechats_published_sample_vector_is_accepted_and_a_tampered_one_refused(app_client, monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "wechat_token", SAMPLE["token"])
    monkeypatch.setattr(settings, "wechat_encoding_aes_key", SAMPLE["aes_key"])
    monkeypatch.setattr(settings, "wechat_app_id", SAMPLE["appid"])
    app_client.app.dependency_overrides[get_now] = lambda: datetime.fromtimestamp(int(SAMPLE["timestamp"]), UTC)
    params = {"signature": signature(SAMPLE["token"], SAMPLE["timestamp"], SAMPLE["nonce"]),
              "timestamp": SAMPLE["timestamp"], "nonce": SAMPLE["nonce"], "encrypt_type": "aes",
              "msg_signature": SAMPLE["msg_signature"]}
    response = app_client.post("/wechat/callback", params=params, content=SAMPLE["body"].encode())
    assert response.status_code == 200 and "<Encrypt>" in response.text  # a text message: an encrypted reply
    crypto = WeChatCrypto(SAMPLE["token"], SAMPLE["aes_key"], SAMPLE["appid"])
    import re

    reply_signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", response.text).group(1)
    assert "mycreate" in crypto.decrypt_message(response.text, reply_signature, SAMPLE["timestamp"], SAMPLE["nonce"])
    tampered = {**params, "msg_signature": "5" + SAMPLE["msg_signature"][1:]}
    assert app_client.post("/wechat/callback", params=tampered, content=SAMPLE["body"].encode()).status_code == 403


def popup(openid: str, create_time: int, *choices: tuple[str, str], event: str = "subscribe_msg_popup_event") -> str:
    wrapper = "SubscribeMsgPopupEvent" if event == "subscribe_msg_popup_event" else "SubscribeMsgChangeEvent"
    items = "".join(f"<List><TemplateId><![CDATA[{t}]]></TemplateId><SubscribeStatusString><![CDATA[{c}]]>"
                    f"</SubscribeStatusString><PopupScene>0</PopupScene></List>" for t, c in choices)
    return (f"<xml><ToUserName><![CDATA[gh_loyalty]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><{wrapper}>{items}</{wrapper}></xml>")


def open_grants(session, openid: str) -> dict[str, int]:
    rows = session.exec(select(SubscriptionGrant).where(SubscriptionGrant.openid == openid,
                                                        SubscriptionGrant.used_at.is_(None),
                                                        SubscriptionGrant.revoked_at.is_(None))).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.template_id] = counts.get(row.template_id, 0) + 1
    return counts


def test_subscription_choices_become_one_time_grants_and_a_reject_revokes_them(app_client, session):
    accepted = popup("o-sub", 1_772_000_100, ("SUB-POINTS", "accept"), ("SUB-TIER", "reject"))
    assert post(app_client, accepted).text == "success"
    assert post(app_client, accepted, signed(nonce="retry")).text == "success"  # WeChat's retry grants nothing
    post(app_client, popup("o-sub", 1_772_000_101, ("SUB-POINTS", "accept")))
    assert open_grants(session, "o-sub") == {"SUB-POINTS": 2}  # one grant per accept, one send per grant
    post(app_client, popup("o-sub", 1_772_000_102, ("SUB-POINTS", "reject"), event="subscribe_msg_change_event"))
    assert open_grants(session, "o-sub") == {}


def test_a_subscription_send_report_is_stored_on_its_touch(app_client, session):
    touch = sent_touch(session, "o-s", "2794188253209100289")
    report = ("<SubscribeMsgSentEvent><List><TemplateId><![CDATA[SUB-POINTS]]></TemplateId>"
              "<MsgID>2794188253209100289</MsgID><ErrorCode>0</ErrorCode>"
              "<ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent>")
    xml = (f"<xml><ToUserName><![CDATA[gh_loyalty]]></ToUserName><FromUserName><![CDATA[o-s]]></FromUserName>"
           f"<CreateTime>1772000200</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           f"<Event><![CDATA[subscribe_msg_sent_event]]></Event>{report}</xml>")
    assert post(app_client, xml).text == "success"
    session.refresh(touch)
    assert touch.delivery_status == "success"


def test_my_tier_tells_a_family_member_where_their_tier_comes_from(app_client, session):
    from domain.organisations import service as orgs
    from domain.organisations.models import FamilyRelation, OrganisationRole, RevenueClass

    at = datetime(2026, 1, 1, tzinfo=UTC)
    leader = make_member(session, name="Zhao Lei")
    spouse = make_member(session, wechat_openid="o-spouse", name="Sun Li")
    org = orgs.create_organisation(session, name="Spring Foods", revenue_class=RevenueClass.KEY, now=at)
    orgs.link_member(session, organisation_id=org.id, member_id=leader.id, role=OrganisationRole.LEADER, actor="t",
                     now=at)
    orgs.link_family(session, member_id=leader.id, relative_id=spouse.id, relation=FamilyRelation.SPOUSE,
                     consent_source="app", consented_at=at, actor="t", now=at)
    session.commit()
    app_client.app.dependency_overrides[get_now] = lambda: datetime.fromtimestamp(int(time.time()), UTC)
    tier = post(app_client, event_xml("o-spouse", "CLICK", "MY_TIER", create_time=1_772_000_021))
    assert "served at tier A as family of Zhao Lei; your own tier is D" in tier.text
