"""Operator and supervisor views: job runs, the personal-data access log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import AdminCaller, AuditCaller, SessionDep
from api.schemas.common import DEFAULT_PAGE_LIMIT, ERROR_RESPONSES, CursorQuery, LimitQuery, Page, from_row
from domain.access.service import list_access_log
from domain.operations.models import JobRunStatus
from domain.operations.service import list_job_runs

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)


class JobRunOut(BaseModel):
    id: int
    job: str
    as_of: datetime
    trigger: str
    status: JobRunStatus
    host: str
    pid: int
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]
    error: str | None


class AccessLogOut(BaseModel):
    id: int
    api_key_name: str | None
    agent_id: str | None
    staff_id: int | None
    member_id: int
    action: str
    reason: str
    at: datetime


@router.get("/job-runs", response_model=Page[JobRunOut], summary="Job runs, newest first")
def job_runs(session: SessionDep, caller: AdminCaller, job: Annotated[str | None, Query(max_length=64)] = None,
             status: Annotated[JobRunStatus | None, Query()] = None, cursor: CursorQuery = None,
             limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[JobRunOut]:
    page = list_job_runs(session, job=job, status=status, cursor=cursor, limit=limit)
    return Page[JobRunOut].of(page, lambda r: from_row(JobRunOut, r))


@router.get("/access-log", response_model=Page[AccessLogOut],
            summary="Who read whose personal data, when and why; latest first (supervisors)")
def access_log(session: SessionDep, caller: AuditCaller,
               member_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               agent_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
               api_key_name: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
               action: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
               cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[AccessLogOut]:
    page = list_access_log(session, member_id=member_id, agent_id=agent_id, api_key_name=api_key_name,
                           action=action, cursor=cursor, limit=limit)
    return Page[AccessLogOut].of(page, lambda e: from_row(AccessLogOut, e))
