"""The member's own pages (app, mini-program, WeChat H5): ``/v1/me/…`` never takes a member id — the member
is the one the session token belongs to. Every route reuses the services the back office uses."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from api.deps import AppKeyCaller, MemberCaller, NowDep, SessionDep, public
from api.errors import domain_error_response, error_response
from api.phone_codes import send_phone_code
from api.routes.members import member_out
from api.schemas.common import ERROR_RESPONSES, MAX_ID, Day, Email, Integer, StrictModel, from_row
from api.schemas.contacts import ConsentIn
from api.schemas.members import MemberOut
from api.schemas.points import BalanceOut, CouponOut, LedgerEntryOut, LedgerPage, RedemptionOut, TierOut
from domain.lifecycle import service as lifecycle
from domain.lifecycle.rules import LifecycleStage
from domain.member_sessions import service as member_sessions
from domain.member_sessions.rules import Proof
from domain.members import service as members
from domain.members.models import ConsentStatus, ContactChannel, Gender
from domain.members.rules import mask_phone
from domain.organisations import service as organisations
from domain.points import service as points
from domain.rebates import service as rebates
from domain.settings import get_settings
from domain.tiers import service as tiers

router = APIRouter(prefix="/v1/me", tags=["me"], responses=ERROR_RESPONSES)


class MemberSessionOut(BaseModel):
    member_id: int
    access_token: str
    token_type: str = "bearer"
    expires_at: str
    refresh_token: str
    """Keep it on the device; it works once — each refresh answers a new one."""
    refresh_expires_at: str


def session_out(issued: member_sessions.IssuedMemberSession) -> MemberSessionOut:
    return MemberSessionOut(member_id=issued.member_id, access_token=issued.access_token,
                            expires_at=issued.expires_at.isoformat(), refresh_token=issued.refresh_token,
                            refresh_expires_at=issued.refresh_expires_at.isoformat())


class ExchangeIn(StrictModel):
    member_id: Integer = Field(ge=1, le=MAX_ID)


class RefreshIn(StrictModel):
    refresh_token: str = Field(min_length=10, max_length=200)


@router.post("/sessions/exchange", status_code=201, response_model=MemberSessionOut,
             summary="Token exchange: an app server that authenticated the member itself gets a member session")
def exchange(body: ExchangeIn, session: SessionDep, caller: AppKeyCaller, now: NowDep) -> MemberSessionOut:
    return session_out(member_sessions.start_member_session(session, member_id=body.member_id, proof=Proof.EXCHANGE,
                                                            client=caller.key_name, now=now))


@router.post("/sessions/refresh", response_model=MemberSessionOut,
             dependencies=[Depends(public("the refresh token in the body is the credential"))],
             summary="A new access token and a new refresh token; the old refresh token stops working")
def refresh(body: RefreshIn, session: SessionDep, now: NowDep) -> MemberSessionOut | JSONResponse:
    outcome = member_sessions.refresh_member_session(session, refresh_token=body.refresh_token, now=now)
    if outcome.refusal is not None:
        return domain_error_response(outcome.refusal)  # returned: ending a reused login must commit
    assert outcome.issued is not None
    return session_out(outcome.issued)


class SmsCodeIn(StrictModel):
    phone: str = Field(min_length=5, max_length=32, examples=["+86 138 0013 8000"])


class SmsSignInIn(SmsCodeIn):
    code: str = Field(max_length=16, pattern=r"^\s*\d{4,8}\s*$")


class SmsCodeSent(BaseModel):
    sent_to: str
    """The phone, masked (the page shows where the code went)."""
    expires_in_seconds: int


def requesting_client(request: Request) -> str:
    """The per-client limit's key: the address the request came from (the edge's per-address rate limit
    keys on the same)."""
    return request.client.host if request.client else "-"


@router.post("/sessions/sms-code", status_code=202, response_model=SmsCodeSent,
             dependencies=[Depends(public("asks for a code; only the phone's holder can use it"))],
             summary="Sign-in step 1: send a one-time code to this phone (same answer for members and others)")
def request_sms_code(request: Request, body: SmsCodeIn, session: SessionDep, now: NowDep) -> SmsCodeSent | JSONResponse:
    phone, code = member_sessions.issue_sign_in_code(session, phone=body.phone, client=requesting_client(request),
                                                     now=now)
    minutes = get_settings().member_sms_code_minutes
    # Sent before the commit: a code the gateway refused leaves no row, so it counts against no limit.
    failure = send_phone_code(phone=phone, code=code, minutes=minutes, idempotency_key=f"sign-in:{phone}:{now}")
    if failure is not None:
        session.rollback()
        return error_response(503, "sms_unavailable", "the SMS code could not be sent; try again",
                              {"reason": failure})
    return SmsCodeSent(sent_to=mask_phone(phone) or "", expires_in_seconds=minutes * 60)


@router.post("/sessions/sms", status_code=201, response_model=MemberSessionOut,
             dependencies=[Depends(public("the SMS code sent to the phone is the credential"))],
             summary="Sign-in step 2: the phone and its code give a member session (an unknown phone is enrolled)")
def sign_in_with_sms(body: SmsSignInIn, session: SessionDep, now: NowDep) -> MemberSessionOut | JSONResponse:
    outcome = member_sessions.sign_in_with_code(session, phone=body.phone, code=body.code.strip(), now=now)
    if outcome.refusal is not None:
        return domain_error_response(outcome.refusal)  # returned: the wrong attempt must commit to count
    assert outcome.issued is not None
    return session_out(outcome.issued)


@router.delete("/sessions/current", status_code=204, summary="Sign out: this login's tokens stop working at once")
def sign_out(session: SessionDep, caller: MemberCaller, now: NowDep) -> Response:
    assert caller.session_id is not None
    member_sessions.end_member_session(session, session_id=caller.session_id, now=now)
    return Response(status_code=204)


def _me(caller: MemberCaller) -> int:
    assert caller.member_id is not None
    return caller.member_id


class MeUpdate(StrictModel):
    """What a member may change about themselves. The phone changes only with an SMS proof
    (``POST /v1/me/phone``); tags and the assigned rep are the company's, not the member's."""

    email: Email | None = None
    name: str | None = Field(default=None, max_length=100)
    birthday: Day | None = None
    gender: Gender | None = None
    city: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)


class ContactPreferences(BaseModel):
    preferred_channel: ContactChannel | None
    consents: dict[ContactChannel, ConsentStatus]


class ContactPreferencesIn(StrictModel):
    preferred_channel: ContactChannel | None = None
    consents: dict[ContactChannel, StrictBool] = Field(default_factory=dict)


class MyRedemptionIn(StrictModel):
    redemption_id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._\-]+$")
    points: Integer = Field(gt=0, le=10**9)
    reason: str = Field(min_length=1, max_length=200)


@router.get("", response_model=MemberOut, summary="My profile")
def read_me(session: SessionDep, caller: MemberCaller) -> MemberOut:
    return member_out(session, members.get_member(session, member_id=_me(caller)), caller)


@router.patch("", response_model=MemberOut, summary="Change my profile")
def update_me(body: MeUpdate, session: SessionDep, caller: MemberCaller, now: NowDep) -> MemberOut:
    member = members.update_member(session, member_id=_me(caller), changes=body.model_dump(exclude_unset=True),
                                   now=now)
    return member_out(session, member, caller)


@router.get("/contact-preferences", response_model=ContactPreferences,
            summary="My preferred channel and my consent per channel")
def read_preferences(session: SessionDep, caller: MemberCaller) -> ContactPreferences:
    member = members.get_member(session, member_id=_me(caller))
    return ContactPreferences(preferred_channel=member.preferred_channel,
                              consents=members.consents_of(session, member_id=_me(caller)))


@router.put("/contact-preferences", response_model=ContactPreferences,
            summary="Set my preferred channel and grant or withdraw consents (an opt-out holds at once)")
def set_preferences(body: ContactPreferencesIn, session: SessionDep, caller: MemberCaller,
                    now: NowDep) -> ContactPreferences:
    if "preferred_channel" in body.model_fields_set:
        members.update_member(session, member_id=_me(caller), changes={"preferred_channel": body.preferred_channel},
                              now=now)
    for channel, granted in body.consents.items():
        members.set_consent(session, member_id=_me(caller), channel=channel, granted=granted, source=caller.actor,
                            now=now)
    return read_preferences(session, caller)


@router.get("/consents", response_model=dict[ContactChannel, ConsentStatus], summary="My consents")
def read_consents(session: SessionDep, caller: MemberCaller) -> dict[ContactChannel, ConsentStatus]:
    return members.consents_of(session, member_id=_me(caller))


@router.put("/consents/{channel}", response_model=dict[ContactChannel, ConsentStatus],
            summary="Grant or withdraw my consent for a channel")
def put_consent(channel: ContactChannel, body: ConsentIn, session: SessionDep, caller: MemberCaller,
                now: NowDep) -> dict[ContactChannel, ConsentStatus]:
    members.set_consent(session, member_id=_me(caller), channel=channel, granted=body.granted, source=caller.actor,
                        now=now)
    return members.consents_of(session, member_id=_me(caller))


@router.get("/points", response_model=BalanceOut, summary="My points")
def my_points(session: SessionDep, caller: MemberCaller, now: NowDep) -> BalanceOut:
    return BalanceOut(**asdict(points.balance_of(session, member_id=_me(caller), now=now)))


@router.get("/points/ledger", response_model=LedgerPage, summary="My points history, newest first")
def my_ledger(session: SessionDep, caller: MemberCaller, limit: Annotated[int, Query(ge=1, le=200)] = 50,
              before_id: Annotated[int | None, Query(ge=1)] = None) -> LedgerPage:
    entries = points.ledger_page(session, member_id=_me(caller), limit=limit, before_id=before_id)
    return LedgerPage(entries=[from_row(LedgerEntryOut, e) for e in entries],
                      next_before_id=entries[-1].id if len(entries) == limit else None)


@router.get("/tier", response_model=TierOut, summary="My tier and what the next one needs")
def my_tier(session: SessionDep, caller: MemberCaller, now: NowDep) -> TierOut:
    view = tiers.explain_tier(session, member_id=_me(caller), now=now)
    served = organisations.treatment_of(session, member_id=_me(caller), own_tier=view.tier)
    return TierOut(**asdict(view), treatment=served.as_dict())


class MyStageOut(BaseModel):
    """The member's own lifecycle stage. The churn warning is not shown: it is the company's judgement for
    planning retention work, not a statement to the member (docs/scores.md)."""

    stage: LifecycleStage | None
    """Null before the first daily refresh."""
    as_of: date | None


@router.get("/stage", response_model=MyStageOut, summary="My lifecycle stage (onboarding, growth, maturity, decline)")
def my_stage(session: SessionDep, caller: MemberCaller) -> MyStageOut:
    view = lifecycle.lifecycle_of(session, member_id=_me(caller))
    return MyStageOut(stage=view["stage"], as_of=view["stage_as_of"])


@router.get("/coupons", response_model=list[CouponOut], summary="My coupons")
def my_coupons(session: SessionDep, caller: MemberCaller, now: NowDep) -> list[CouponOut]:
    return [from_row(CouponOut, c, state=rebates.state_of(c, now=now))
            for c in rebates.coupons_of(session, member_id=_me(caller))]


@router.post("/redemptions", response_model=RedemptionOut, status_code=201,
             summary="Spend my points (idempotent by my redemption_id; 422 insufficient_points when short)")
def my_redemption(body: MyRedemptionIn, response: Response, session: SessionDep, caller: MemberCaller,
                  now: NowDep) -> RedemptionOut:
    redemption, replayed = points.redeem_points(
        session, member_id=_me(caller), redemption_id=body.redemption_id, points=body.points, reason=body.reason,
        now=now, sent_by=caller.namespace)  # member:<id>: one member can neither replay nor pre-empt another's
    if replayed:
        response.status_code = 200
    return from_row(RedemptionOut, redemption, replayed=replayed)
