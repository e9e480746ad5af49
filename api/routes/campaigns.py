"""Campaigns for marketing: create, preview, approve, launch, report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import ApproverCaller, MarketingCaller, NowDep, SessionDep
from api.schemas.common import DEFAULT_PAGE_LIMIT, ERROR_RESPONSES, CursorQuery, LimitQuery, Page, StrictModel, from_row
from domain.campaigns import service as campaigns

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=ERROR_RESPONSES)
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class CampaignIn(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    channel: str = Field(pattern="^(preferred|sms|wechat|email|app|phone)$")
    purpose: str | None = Field(default=None, pattern="^(marketing|care|service)$",
                                description="Optional: the template's purpose applies; a different one is a 422")
    template: str = Field(min_length=1, max_length=64, description="A key of the template catalogue")
    audience: dict[str, Any] = Field(default_factory=dict)
    control_share: float = Field(default=0.1, ge=0, le=0.5)


class CampaignOut(BaseModel):
    id: int
    name: str
    channel: str
    purpose: str
    template: str
    body: str
    audience: dict[str, Any]
    control_share: float
    status: str
    created_by: str
    approved_by: str | None
    created_at: datetime
    approved_at: datetime | None
    launched_at: datetime | None


@router.get("", response_model=Page[CampaignOut], summary="Campaigns, newest first")
def list_campaigns(session: SessionDep, caller: MarketingCaller,
                   status: Annotated[str | None, Query(pattern="^(draft|approved|launched)$")] = None,
                   cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[CampaignOut]:
    page = campaigns.list_campaigns(session, status=status, cursor=cursor, limit=limit)
    return Page[CampaignOut].of(page, lambda c: from_row(CampaignOut, c))


@router.get("/{campaign_id}", response_model=CampaignOut, summary="One campaign")
def get_campaign(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller) -> CampaignOut:
    return from_row(CampaignOut, campaigns.get_campaign(session, campaign_id=campaign_id))


@router.post("", status_code=201, summary="Create a draft campaign with its audience filter")
def create(body: CampaignIn, session: SessionDep, caller: MarketingCaller, now: NowDep) -> dict[str, Any]:
    campaign = campaigns.create_campaign(session, actor=caller.actor, now=now, **body.model_dump())
    return {"id": campaign.id, "status": campaign.status, "audience": campaign.audience}


@router.get("/{campaign_id}/preview", summary="Audience size and a sample, before launch")
def preview(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller, now: NowDep) -> dict[str, Any]:
    return campaigns.preview(session, campaign_id=campaign_id, now=now)


@router.post("/{campaign_id}/approve",
             summary="Approve a draft: a second named person (staff), never its author or a key")
def approve(campaign_id: CampaignId, session: SessionDep, caller: ApproverCaller, now: NowDep) -> dict[str, Any]:
    campaign = campaigns.approve(session, campaign_id=campaign_id, actor=caller.actor, now=now)
    return {"id": campaign.id, "status": campaign.status, "approved_by": campaign.approved_by}


@router.post("/{campaign_id}/launch", summary="Fix the audience and its control group; sending follows")
def launch(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller, now: NowDep) -> dict[str, Any]:
    return {"id": campaign_id, **campaigns.launch(session, campaign_id=campaign_id, now=now)}


@router.get("/{campaign_id}/report", summary="Sent, deferred, suppressed by reason, uplift with a 95% CI")
def report(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller) -> dict[str, Any]:
    return campaigns.report(session, campaign_id=campaign_id)
