"""The template catalogue for admins: list the current texts, publish a version, read a key's versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import AdminCaller, NowDep, SessionDep
from api.schemas.common import ERROR_RESPONSES, StrictModel, from_row
from domain.templates import service as templates

router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=ERROR_RESPONSES)
TemplateKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")]


class TemplateIn(StrictModel):
    key: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")
    channel: str = Field(default="any", pattern="^(any|phone|sms|wechat|email|app)$")
    purpose: str = Field(pattern="^(service|care|marketing)$")
    body: str = Field(min_length=1, max_length=1000, examples=["{name}, spring offer for {tier} members"])
    variables: list[str] = Field(default_factory=list, max_length=20, examples=[["name", "tier"]])


class TemplateOut(BaseModel):
    id: int
    key: str
    channel: str
    version: int
    purpose: str
    body: str
    variables: list[str]
    created_by: str
    created_at: datetime


@router.get("", response_model=list[TemplateOut], summary="The current version of every template, by key and channel")
def list_templates(session: SessionDep, caller: AdminCaller, now: NowDep) -> list[TemplateOut]:
    return [from_row(TemplateOut, t) for t in templates.list_templates(session, now=now)]


@router.post("", response_model=TemplateOut, status_code=201,
             summary="Publish a template version (422 naming an undeclared placeholder)")
def publish(body: TemplateIn, session: SessionDep, caller: AdminCaller, now: NowDep) -> TemplateOut:
    return from_row(TemplateOut, templates.publish_template(session, actor=caller.actor, now=now, **body.model_dump()))


@router.get("/{key}", response_model=list[TemplateOut], summary="Every version of a template, newest first")
def versions(key: TemplateKey, session: SessionDep, caller: AdminCaller) -> list[TemplateOut]:
    return [from_row(TemplateOut, t) for t in templates.template_versions(session, key=key)]
