"""Campaigns for marketing: create, list, read, edit and delete drafts, preview, approve, launch, report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, StrictFloat

from api.deps import ApproverCaller, MarketingCaller, NowDep, SessionDep
from api.schemas.common import (
    DEFAULT_PAGE_LIMIT,
    ERROR_RESPONSES,
    ConvertedOut,
    CursorQuery,
    LimitQuery,
    Page,
    StrictModel,
    UpliftOut,
    from_row,
)
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
    control_share: StrictFloat = Field(default=0.1, ge=0, le=0.5)


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


class CampaignEdit(StrictModel):
    """Only the fields sent change; ``purpose`` null (or left out with a new template) means the template's."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    channel: str | None = Field(default=None, pattern="^(preferred|sms|wechat|email|app|phone)$")
    purpose: str | None = Field(default=None, pattern="^(marketing|care|service)$")
    template: str | None = Field(default=None, min_length=1, max_length=64)
    audience: dict[str, Any] | None = None
    control_share: StrictFloat | None = Field(default=None, ge=0, le=0.5)


class GatePreviewOut(BaseModel):
    basis: str
    """``audience``: every member was asked about; ``sample``: a random sample, counts scaled to the audience."""
    evaluated: int
    approved: int
    """Would go out now."""
    deferred: int
    """Would go out later (quiet hours, a cap's next slot)."""
    rejected: int
    by_reason: dict[str, int]
    """Deferrals and rejections by the gate's reason (a member may have several), ``no_reachable_channel`` included."""
    approved_by_channel: dict[str, int]


class LaunchOut(BaseModel):
    id: int
    audience: int = Field(description="Members fixed into the audience, control group included")


class CampaignReportOut(BaseModel):
    campaign_id: int
    status: str
    audience: int
    control: int
    sent: int
    deferred: int
    suppressed: dict[str, int] = Field(description="Audience members the gate refused, by reason")
    converted: ConvertedOut
    uplift: UpliftOut


class PreviewOut(BaseModel):
    campaign_id: int
    audience_size: int
    expected_control: int
    sample: list[dict[str, Any]]
    gate_now: GatePreviewOut


@router.get("", response_model=Page[CampaignOut], summary="Campaigns, newest first")
def list_campaigns(session: SessionDep, caller: MarketingCaller,
                   status: Annotated[str | None, Query(pattern="^(draft|approved|launched)$")] = None,
                   cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[CampaignOut]:
    page = campaigns.list_campaigns(session, status=status, cursor=cursor, limit=limit)
    return Page[CampaignOut].of(page, lambda c: from_row(CampaignOut, c))


@router.get("/{campaign_id}", response_model=CampaignOut, summary="One campaign")
def get_campaign(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller) -> CampaignOut:
    return from_row(CampaignOut, campaigns.get_campaign(session, campaign_id=campaign_id))


@router.post("", status_code=201, response_model=CampaignOut,
             summary="Create a draft campaign with its audience filter")
def create(body: CampaignIn, session: SessionDep, caller: MarketingCaller, now: NowDep) -> CampaignOut:
    campaign = campaigns.create_campaign(session, actor=caller.actor, now=now, **body.model_dump())
    return from_row(CampaignOut, campaign)


@router.patch("/{campaign_id}", response_model=CampaignOut,
              summary="Edit a draft (checked as at creation); 409 campaign_not_draft once approved or launched")
def edit(campaign_id: CampaignId, body: CampaignEdit, session: SessionDep, caller: MarketingCaller,
         now: NowDep) -> CampaignOut:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k == "purpose"}
    return from_row(CampaignOut, campaigns.edit_draft(session, campaign_id=campaign_id, changes=changes, now=now))


@router.delete("/{campaign_id}", status_code=204, response_class=Response,
               summary="Delete a draft; 409 campaign_not_draft once approved or launched")
def delete(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller) -> Response:
    campaigns.delete_draft(session, campaign_id=campaign_id)
    return Response(status_code=204)


@router.get("/{campaign_id}/preview", response_model=PreviewOut,
            summary="Audience size, a sample, and how many the contact gate would let through now, by reason")
def preview(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller, now: NowDep) -> PreviewOut:
    return PreviewOut(**campaigns.preview(session, campaign_id=campaign_id, now=now))


@router.post("/{campaign_id}/approve", response_model=CampaignOut,
             summary="Approve a draft: a second named person (staff), never its author or a key")
def approve(campaign_id: CampaignId, session: SessionDep, caller: ApproverCaller, now: NowDep) -> CampaignOut:
    return from_row(CampaignOut, campaigns.approve(session, campaign_id=campaign_id, actor=caller.actor, now=now))


@router.post("/{campaign_id}/launch", response_model=LaunchOut,
             summary="Fix the audience and its control group; sending follows")
def launch(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller, now: NowDep) -> LaunchOut:
    return LaunchOut(id=campaign_id, **campaigns.launch(session, campaign_id=campaign_id, now=now))


@router.get("/{campaign_id}/report", response_model=CampaignReportOut,
            summary="Sent, deferred, suppressed by reason, uplift with a 95% CI")
def report(campaign_id: CampaignId, session: SessionDep, caller: MarketingCaller) -> CampaignReportOut:
    return CampaignReportOut.model_validate(campaigns.report(session, campaign_id=campaign_id))
