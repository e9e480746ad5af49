"""Campaigns for marketing: create, preview, approve, launch, report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from api.deps import AdminCaller, NowDep, SessionDep
from api.schemas.common import ERROR_RESPONSES, StrictModel
from domain.campaigns import service as campaigns

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=ERROR_RESPONSES)
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class CampaignIn(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    channel: str = Field(pattern="^(preferred|sms|wechat|email|app|phone)$")
    purpose: str = Field(default="marketing", pattern="^(marketing|care|service)$")
    template: str = Field(min_length=1, max_length=64)
    body: str = Field(min_length=1, max_length=1000, examples=["{name}, spring offer for {tier} members"])
    audience: dict[str, Any] = Field(default_factory=dict)
    control_share: float = Field(default=0.1, ge=0, le=0.5)


@router.post("", status_code=201, summary="Create a draft campaign with its audience filter")
def create(body: CampaignIn, session: SessionDep, caller: AdminCaller, now: NowDep) -> dict[str, Any]:
    campaign = campaigns.create_campaign(session, actor=caller.actor, now=now, **body.model_dump())
    return {"id": campaign.id, "status": campaign.status, "audience": campaign.audience}


@router.get("/{campaign_id}/preview", summary="Audience size and a sample, before launch")
def preview(campaign_id: CampaignId, session: SessionDep, caller: AdminCaller, now: NowDep) -> dict[str, Any]:
    return campaigns.preview(session, campaign_id=campaign_id, now=now)


@router.post("/{campaign_id}/approve", summary="Approve a draft (not by its author)")
def approve(campaign_id: CampaignId, session: SessionDep, caller: AdminCaller, now: NowDep) -> dict[str, Any]:
    campaign = campaigns.approve(session, campaign_id=campaign_id, actor=caller.actor, now=now)
    return {"id": campaign.id, "status": campaign.status, "approved_by": campaign.approved_by}


@router.post("/{campaign_id}/launch", summary="Fix the audience and its control group; sending follows")
def launch(campaign_id: CampaignId, session: SessionDep, caller: AdminCaller, now: NowDep) -> dict[str, Any]:
    return {"id": campaign_id, **campaigns.launch(session, campaign_id=campaign_id, now=now)}


@router.get("/{campaign_id}/report", summary="Sent, deferred, suppressed by reason, uplift with a 95% CI")
def report(campaign_id: CampaignId, session: SessionDep, caller: AdminCaller) -> dict[str, Any]:
    return campaigns.report(session, campaign_id=campaign_id)
