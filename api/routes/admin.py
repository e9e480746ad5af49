"""Operator views: job runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import AdminCaller, SessionDep
from api.schemas.common import ERROR_RESPONSES, from_row
from domain.operations.service import list_job_runs

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)


class JobRunOut(BaseModel):
    id: int
    job: str
    as_of: datetime
    trigger: str
    status: str
    host: str
    pid: int
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]
    error: str | None


@router.get("/job-runs", response_model=list[JobRunOut], summary="Recent job runs, newest first")
def job_runs(session: SessionDep, caller: AdminCaller, job: Annotated[str | None, Query(max_length=64)] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50,
             before_id: Annotated[int | None, Query(ge=1)] = None) -> list[JobRunOut]:
    return [from_row(JobRunOut, r) for r in list_job_runs(session, job=job, limit=limit,
                                                                           before_id=before_id)]
