"""Journeys for operators: list, pause/resume, edit (a new version), report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from api.deps import AdminCaller, NowDep, SessionDep
from api.schemas.common import ERROR_RESPONSES, StrictModel
from domain.journeys import service as journeys

router = APIRouter(prefix="/v1/journeys", tags=["journeys"], responses=ERROR_RESPONSES)
JourneyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class JourneyStatusIn(StrictModel):
    status: str = Field(pattern="^(active|paused)$")


class JourneyCreateIn(StrictModel):
    key: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$")
    name: str = Field(min_length=1, max_length=100)
    trigger: str = Field(pattern=r"^(member\.joined|member\.dormant|care\.date)$")
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=50)
    control_share: float = Field(default=0.1, ge=0, le=0.5)


class JourneyEditIn(StrictModel):
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=50)
    control_share: float = Field(ge=0, le=0.5)


def _out(journey: Any, version: Any) -> dict[str, Any]:
    return {"id": journey.id, "key": journey.key, "name": journey.name, "trigger": journey.trigger,
            "status": journey.status, "version": version.version, "steps": version.steps,
            "control_share": version.control_share, "goal": version.goal}


@router.get("", summary="Every journey with its current version")
def list_journeys(session: SessionDep, caller: AdminCaller, now: NowDep) -> list[dict[str, Any]]:
    journeys.ensure_builtin_journeys(session, now=now)
    return [_out(j, v) for j, v in journeys.list_journeys(session)]


@router.post("", status_code=201, summary="Create a journey (send, branch and lapse steps)")
def create(body: JourneyCreateIn, session: SessionDep, caller: AdminCaller, now: NowDep) -> dict[str, Any]:
    journey = journeys.create_journey(session, now=now, **body.model_dump())
    return {"id": journey.id, "key": journey.key, "status": journey.status, "version": journey.current_version}


@router.put("/{journey_id}/status", summary="Pause or resume a journey")
def set_status(journey_id: JourneyId, body: JourneyStatusIn, session: SessionDep, caller: AdminCaller
               ) -> dict[str, Any]:
    journey = journeys.set_journey_status(session, journey_id=journey_id, status=body.status)
    return {"id": journey.id, "status": journey.status}


@router.put("/{journey_id}", summary="Edit a journey: a new version; running members keep theirs")
def edit(journey_id: JourneyId, body: JourneyEditIn, session: SessionDep, caller: AdminCaller,
         now: NowDep) -> dict[str, Any]:
    version = journeys.edit_journey(session, journey_id=journey_id, steps=body.steps,
                                    control_share=body.control_share, now=now)
    return {"id": journey_id, "version": version.version, "steps": version.steps}


@router.get("/{journey_id}/report", summary="Enrolled, control, sent, deferred, suppressed, uplift with 95% CI")
def report(journey_id: JourneyId, session: SessionDep, caller: AdminCaller) -> dict[str, Any]:
    return journeys.journey_report(session, journey_id=journey_id)
