"""Channel usage facts in; channel-preference scores, their validation chart, lifecycle stages and the at-risk
list out."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.deps import AdminCaller, CrmCaller, MarketingCaller, MemberDataCaller, NowDep, SessionDep
from api.schemas.common import ERROR_RESPONSES, MAX_ID, Day, Integer, MemberId, StrictModel
from domain.lifecycle import service as lifecycle
from domain.orders import service as orders
from domain.scores import report as score_report
from domain.scores import service as scores
from domain.settings import get_settings

router = APIRouter(tags=["scores"], responses=ERROR_RESPONSES)


class UsageFactIn(StrictModel):
    member_id: Integer = Field(ge=1, le=MAX_ID)
    channel: str = Field(pattern="^(phone|sms|wechat|app|store|email)$")
    day: Day
    transactions: Integer = Field(ge=0, le=1_000_000, description="Times the member used the channel that day")


class UsageBatchIn(StrictModel):
    source: str = Field(pattern="^[a-z][a-z0-9_.-]{1,39}$",
                        description="The sending system (ivr, web, pos …); `product` is reserved")
    facts: list[UsageFactIn] = Field(max_length=5000)


class UsageBatchOut(BaseModel):
    received: int
    changed: int
    """Facts that were new or had another count; resending a batch changes 0."""


class ChannelScoresOut(BaseModel):
    member_id: int
    scores: dict[str, float]
    top: dict[str, Any] | None


@router.post("/v1/channel-usage", response_model=UsageBatchOut, summary="Ingest a batch of channel usage facts "
             "(idempotent: a (member, channel, day, source) fact is set, not added)")
def ingest_usage(body: UsageBatchIn, session: SessionDep, caller: AdminCaller, now: NowDep) -> UsageBatchOut:
    rows = [scores.UsageRow(f.member_id, f.channel, f.day, f.transactions) for f in body.facts]
    if rows:  # no fact from a day that has not begun in the business zone; history is fine (an operator's import)
        day = max(r.day for r in rows)
        orders.event_time(datetime.combine(day, time.min, tzinfo=ZoneInfo(get_settings().program_timezone)),
                          now=now, what="usage fact", imported=True, field="day")
    return UsageBatchOut(**scores.ingest_usage(session, source=body.source, rows=rows, now=now))


@router.get("/v1/members/{member_id}/channel-scores", response_model=ChannelScoresOut,
            summary="The member's channel-preference scores and their top channel with the reason")
def channel_scores(member_id: MemberId, session: SessionDep, caller: CrmCaller) -> ChannelScoresOut:
    return ChannelScoresOut(member_id=member_id, scores=scores.scores_of(session, member_id=member_id),
                            top=scores.top_channel_of(session, member_id=member_id))


@router.get("/v1/admin/scores/gains.png", summary="The latest validation's gains chart (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def gains_chart(session: SessionDep, caller: MarketingCaller) -> Response:
    return Response(content=score_report.latest_gains_png(session), media_type="image/png")


class ChurnWarningOut(BaseModel):
    cohort: str
    risk: float
    at_risk: bool
    month: date


class LifecycleOut(BaseModel):
    member_id: int
    stage: str | None
    """onboarding, growth, maturity or decline; null before the first daily refresh."""
    stage_as_of: date | None
    churn: ChurnWarningOut | None


class AtRiskOut(BaseModel):
    member_id: int
    cohort: str
    risk: float
    factors: dict[str, Any]


@router.get("/v1/members/{member_id}/lifecycle", response_model=LifecycleOut,
            summary="The member's lifecycle stage and churn warning")
def member_lifecycle(member_id: MemberId, session: SessionDep, caller: MemberDataCaller) -> LifecycleOut:
    return LifecycleOut(member_id=member_id, **lifecycle.lifecycle_of(session, member_id=member_id))


@router.get("/v1/crm/at-risk", response_model=list[AtRiskOut],
            summary="The churn warning's at-risk list, highest risk first (retention calls, reactivation offers)")
def at_risk(session: SessionDep, caller: CrmCaller, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
            cohort: Annotated[str | None, Query(pattern="^(first_6m|6_12m|term_ending)$")] = None
            ) -> list[AtRiskOut]:
    return [AtRiskOut(**r) for r in lifecycle.at_risk_list(session, limit=limit, cohort=cohort)]
