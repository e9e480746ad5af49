"""Journeys for operators: list, pause/resume, edit (a new version), report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StrictFloat

from api.deps import MarketingCaller, NowDep, SessionDep
from api.schemas.common import (
    DEFAULT_PAGE_LIMIT,
    ERROR_RESPONSES,
    ConvertedOut,
    CursorQuery,
    Instant,
    Integer,
    LimitQuery,
    Page,
    StrictModel,
    UpliftOut,
)
from domain.journeys import service as journeys

router = APIRouter(prefix="/v1/journeys", tags=["journeys"], responses=ERROR_RESPONSES)
TRIGGER_PATTERN = r"^(member\.joined|member\.dormant|care\.date)$"
JourneyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class JourneyStatusIn(StrictModel):
    status: str = Field(pattern="^(active|paused)$")


class JourneyCreateIn(StrictModel):
    key: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$")
    name: str = Field(min_length=1, max_length=100)
    trigger: str = Field(pattern=TRIGGER_PATTERN)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=50)
    control_share: StrictFloat = Field(default=0.1, ge=0, le=0.5)
    priority: Integer = Field(default=0, ge=0, le=1000)


class JourneyBackfillIn(StrictModel):
    since: Instant


class JourneyEditIn(StrictModel):
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=50)
    control_share: StrictFloat = Field(ge=0, le=0.5)


class JourneyOut(BaseModel):
    id: int
    key: str
    name: str
    trigger: str
    status: str
    priority: int
    version: int
    steps: list[dict[str, Any]]
    control_share: float
    goal: str


class JourneyCreatedOut(BaseModel):
    id: int
    key: str
    status: str
    version: int


class JourneyStatusOut(BaseModel):
    id: int
    status: str


class JourneyVersionOut(BaseModel):
    id: int
    version: int
    steps: list[dict[str, Any]]


class JourneyBackfillOut(BaseModel):
    id: int
    enrolled: int = Field(description="Members enrolled now for the trigger's earlier occurrences")


class JourneyReportOut(BaseModel):
    journey_id: int
    enrolled: int
    control: int
    sent: int
    deferred: int
    suppressed: dict[str, int] = Field(description="Steps not sent, by reason")
    converted: ConvertedOut
    uplift: UpliftOut


def _out(journey: Any, version: Any) -> JourneyOut:
    return JourneyOut(id=journey.id, key=journey.key, name=journey.name, trigger=journey.trigger,
                      status=journey.status, priority=journey.priority, version=version.version, steps=version.steps,
                      control_share=version.control_share, goal=version.goal)


@router.get("", response_model=Page[JourneyOut], summary="Journeys with their current version, newest first")
def list_journeys(session: SessionDep, caller: MarketingCaller, now: NowDep,
                  status: Annotated[str | None, Query(pattern="^(active|paused)$")] = None,
                  trigger: Annotated[str | None, Query(pattern=TRIGGER_PATTERN)] = None,
                  cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[JourneyOut]:
    journeys.ensure_builtin_journeys(session, now=now)
    page = journeys.list_journeys(session, status=status, trigger=trigger, cursor=cursor, limit=limit)
    return Page[JourneyOut].of(page, lambda jv: _out(*jv))


@router.get("/{journey_id}", response_model=JourneyOut, summary="One journey with its current version")
def get_journey(journey_id: JourneyId, session: SessionDep, caller: MarketingCaller) -> JourneyOut:
    return _out(*journeys.get_journey(session, journey_id=journey_id))


@router.post("", status_code=201, response_model=JourneyCreatedOut,
             summary="Create a journey (send, branch and lapse steps)")
def create(body: JourneyCreateIn, session: SessionDep, caller: MarketingCaller, now: NowDep) -> JourneyCreatedOut:
    journey = journeys.create_journey(session, now=now, **body.model_dump())
    return JourneyCreatedOut(id=journey.id or 0, key=journey.key, status=journey.status,
                             version=journey.current_version)


@router.put("/{journey_id}/status", response_model=JourneyStatusOut, summary="Pause or resume a journey")
def set_status(journey_id: JourneyId, body: JourneyStatusIn, session: SessionDep, caller: MarketingCaller
               ) -> JourneyStatusOut:
    journey = journeys.set_journey_status(session, journey_id=journey_id, status=body.status)
    return JourneyStatusOut(id=journey.id or 0, status=journey.status)


@router.put("/{journey_id}", response_model=JourneyVersionOut,
            summary="Edit a journey: a new version; running members keep theirs")
def edit(journey_id: JourneyId, body: JourneyEditIn, session: SessionDep, caller: MarketingCaller,
         now: NowDep) -> JourneyVersionOut:
    version = journeys.edit_journey(session, journey_id=journey_id, steps=body.steps,
                                    control_share=body.control_share, now=now)
    return JourneyVersionOut(id=journey_id, version=version.version, steps=version.steps)


@router.post("/{journey_id}/backfill", response_model=JourneyBackfillOut,
             summary="Enrol the trigger's earlier occurrences since a time (operator's "
             "explicit request; a journey never back-enrols by itself)")
def backfill(journey_id: JourneyId, body: JourneyBackfillIn, session: SessionDep, caller: MarketingCaller,
             now: NowDep) -> JourneyBackfillOut:
    enrolled = journeys.backfill_journey(session, journey_id=journey_id, since=body.since, as_of=now)
    return JourneyBackfillOut(id=journey_id, enrolled=enrolled)


@router.get("/{journey_id}/report", response_model=JourneyReportOut,
            summary="Enrolled, control, sent, deferred, suppressed, uplift with 95% CI")
def report(journey_id: JourneyId, session: SessionDep, caller: MarketingCaller) -> JourneyReportOut:
    return JourneyReportOut.model_validate(journeys.journey_report(session, journey_id=journey_id))
