"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from domain.db import get_engine
from domain.migrations import database_revisions, head_revisions

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: str = Field(description="`ok` or `unavailable`")
    database: str = Field(description="`ok`, `unreachable` or `not_at_head`")
    revision: str | None = Field(default=None, description="The database's Alembic revision")
    head: str | None = Field(default=None, description="This code's migration head")


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The process can serve: the database answers and its schema is at this code's head",
            response_model=Readiness,
            responses={503: {"model": Readiness, "description": "Not ready: database unreachable or not at head"}})
def readyz() -> JSONResponse:
    """503 while the database is unreachable or at another revision than this code's migrations end at: a
    schema behind head would fail requests that need the new columns, one ahead means old code is serving."""
    try:
        with get_engine().connect() as conn:
            current = database_revisions(conn)
    except sa.exc.SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    head = head_revisions()
    body = {"database": "ok", "revision": ",".join(sorted(current)) or None, "head": ",".join(sorted(head))}
    if current != head:
        return JSONResponse({**body, "status": "unavailable", "database": "not_at_head"}, status_code=503)
    return JSONResponse({**body, "status": "ok"})
