"""Template catalogue use cases: publish a version, read the current one, check what a touch may say."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.errors import InvalidInput, NotFound
from domain.members.models import ContactChannel
from domain.templates.models import MessageTemplate
from domain.templates.rules import ANY_CHANNEL, PURPOSES, body_problem, variables_problem

# The texts the product ships with (journeys and greetings). Published once as version 1 by
# ``ensure_builtin_templates``; an operator publishes new versions over them.
BUILT_IN: Sequence[tuple[str, str, str, tuple[str, ...]]] = (
    ("welcome", "care", "Welcome, {name}! You are a {tier} member. Your points and benefits are in the app.",
     ("name", "tier")),
    ("how_it_works", "service", "{name}, how your membership works: 1 point per yuan, tiers D→C→B→A as you spend.",
     ("name",)),
    ("first_offer", "marketing", "{name}, a first thank-you offer is waiting for you in the app.", ("name",)),
    ("we_miss_you", "care", "{name}, we miss you. You still have {points} points.", ("name", "points")),
    ("comeback_offer", "marketing", "{name}, come back this week for double points.", ("name",)),
    ("strong_comeback_offer", "marketing", "{name}, a 20% welcome-back coupon is yours until the end of the month.",
     ("name",)),
    ("birthday", "care", "Happy birthday, {name}! A small gift is waiting in your account.", ("name",)),
    ("holiday", "care", "{name}, warm wishes for {holiday} from all of us.", ("name", "holiday")),
    ("account", "care", "{name}, warm congratulations to your organisation on its special day, from all of us.",
     ("name",)),
)


def ensure_builtin_templates(session: Session, *, now: datetime) -> None:
    """Publish the built-in texts once (idempotent; concurrent callers insert nothing twice)."""
    session.execute(sa.text("""
        INSERT INTO message_templates (key, channel, version, purpose, body, variables, created_by, created_at)
        SELECT t.key, 'any', 1, t.purpose, t.body, ARRAY(SELECT jsonb_array_elements_text(t.variables)),
               'built-in', :now
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS t(key text, purpose text, body text, variables jsonb)
        ON CONFLICT (key, channel, version) DO NOTHING"""), {"now": now, "rows": json.dumps(
            [{"key": k, "purpose": p, "body": b, "variables": list(v)} for k, p, b, v in BUILT_IN])})


def publish_template(session: Session, *, key: str, channel: str, purpose: str, body: str, variables: list[str],
                     actor: str, now: datetime) -> MessageTemplate:
    """A new version of a template (the first if the key is new). Its purpose never changes across versions
    or channels: a journey or campaign that names it keeps meaning what it meant."""
    if channel != ANY_CHANNEL and channel not in {c.value for c in ContactChannel}:
        raise InvalidInput(f"unknown channel {channel!r}", code="invalid_template", details={"field": "channel"})
    if purpose not in PURPOSES:
        raise InvalidInput(f"unknown purpose {purpose!r}", code="invalid_template", details={"field": "purpose"})
    problem = body_problem(body, variables)
    if problem:
        raise InvalidInput(problem, code="invalid_template", details={"field": "body"})
    session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('template:' || :k, 0))"), {"k": key})
    existing = session.exec(select(MessageTemplate).where(MessageTemplate.key == key)
                            .order_by(col(MessageTemplate.version).desc())).all()
    if existing and existing[0].purpose != purpose:
        raise InvalidInput(f"template {key!r} is {existing[0].purpose}; publish another key for {purpose}",
                           code="template_purpose_fixed", details={"field": "purpose", "purpose": existing[0].purpose})
    version = 1 + max((t.version for t in existing if t.channel == channel), default=0)
    template = MessageTemplate(key=key, channel=channel, version=version, purpose=purpose, body=body,
                               variables=sorted(set(variables)), created_by=actor, created_at=now)
    session.add(template)
    session.flush()
    return template


def current_templates(session: Session, *, keys: Sequence[str] | None = None) -> list[MessageTemplate]:
    """The current version of every (key, channel), optionally of some keys only."""
    query = (select(MessageTemplate).distinct(col(MessageTemplate.key), col(MessageTemplate.channel))
             .order_by(col(MessageTemplate.key), col(MessageTemplate.channel), col(MessageTemplate.version).desc()))
    if keys is not None:
        query = query.where(col(MessageTemplate.key).in_(list(keys)))
    return list(session.exec(query))


def template_for(templates: Sequence[MessageTemplate], *, key: str, channel: str) -> MessageTemplate | None:
    """The text a touch on ``channel`` says for ``key``: the channel's own template, else the ``any`` one."""
    own = [t for t in templates if t.key == key and t.channel == channel]
    shared = [t for t in templates if t.key == key and t.channel == ANY_CHANNEL]
    return (own or shared)[0] if own or shared else None


def resolve(session: Session, *, key: str, channel: str | None, now: datetime) -> MessageTemplate:
    """The current template for a touch or campaign (``channel`` None: any channel, e.g. ``preferred``), or a
    422 naming the unknown template."""
    found = current_templates(session, keys=[key])
    if not found and key in {k for k, *_ in BUILT_IN}:
        ensure_builtin_templates(session, now=now)
        found = current_templates(session, keys=[key])
    template = template_for(found, key=key, channel=channel or ANY_CHANNEL) if channel else (
        template_for(found, key=key, channel=ANY_CHANNEL) or (found[0] if found else None))
    if template is None:
        raise InvalidInput(f"unknown template {key!r}" + (f" for channel {channel}" if channel else ""),
                           code="unknown_template", details={"template": key, "channel": channel})
    return template


def check_touch(template: MessageTemplate, *, purpose: str | None, variables: dict[str, Any]) -> str:
    """The purpose a touch with this template carries (the template's), refusing a different one asked for and
    variables that do not fit the template (422 naming the offender)."""
    if purpose is not None and purpose != template.purpose:
        raise InvalidInput(f"template {template.key!r} is {template.purpose}, not {purpose}",
                           code="purpose_mismatch", details={"template": template.key, "purpose": template.purpose})
    problem = variables_problem(variables, template.variables)
    if problem:
        raise InvalidInput(problem, code="invalid_variables", details={"template": template.key,
                                                                       "variables": template.variables})
    return template.purpose


def list_templates(session: Session, *, now: datetime) -> list[MessageTemplate]:
    ensure_builtin_templates(session, now=now)
    return current_templates(session)


def template_versions(session: Session, *, key: str) -> list[MessageTemplate]:
    rows = list(session.exec(select(MessageTemplate).where(MessageTemplate.key == key)
                             .order_by(col(MessageTemplate.channel), col(MessageTemplate.version).desc())))
    if not rows:
        raise NotFound(f"template {key!r} not found", code="template_not_found")
    return rows
