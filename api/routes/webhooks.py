"""Webhook subscriptions for other systems (admin): subscribe, rotate the secret, pause, replay a time range."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import AnyHttpUrl, BaseModel, Field, StrictBool

from api.deps import AdminCaller, NowDep, SessionDep
from api.schemas.common import ERROR_RESPONSES, MAX_ID, Instant, StrictModel, from_row
from domain.settings import get_settings
from domain.webhooks import service as webhooks
from domain.webhooks.models import WebhookSubscription
from domain.webhooks.rules import PUBLIC_EVENTS, PUBLIC_NAME

router = APIRouter(prefix="/v1/admin/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)
SubscriptionId = Annotated[int, Path(ge=1, le=MAX_ID)]


class NewSubscription(StrictModel):
    name: str = Field(min_length=1, max_length=80)
    url: AnyHttpUrl = Field(json_schema_extra={"pattern": "^https?://[^/?#\\s]+"})
    """The pattern says in the schema what ``AnyHttpUrl`` checks: an http(s) URL with a host."""
    events: list[str] = Field(min_length=1, max_length=len(PUBLIC_EVENTS),
                              description=f"Public event names: {', '.join(sorted(PUBLIC_EVENTS))}")

    model_config = {"json_schema_extra": {"examples": [
        {"name": "crm-sync", "url": "https://crm.example.com/hooks/loyalty", "events": ["tier.changed"]}]}}


class SubscriptionOut(BaseModel):
    id: int
    name: str
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: datetime
    previous_secret_until: datetime | None


class SubscriptionWithSecret(SubscriptionOut):
    secret: str
    """Shown only here (creation and rotation): verify ``Loyalty-Signature`` with it."""


class ActiveIn(StrictModel):
    active: StrictBool


class ReplayIn(StrictModel):
    start: Instant
    end: Instant


class ReplayOut(BaseModel):
    due: int
    """Deliveries put back in the outbox (they keep their event ids)."""


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    member_id: int | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


def _out(row: WebhookSubscription, schema: type[SubscriptionOut] = SubscriptionOut) -> SubscriptionOut:
    return from_row(schema, row, events=sorted(PUBLIC_NAME.get(k, k) for k in row.kinds))


@router.post("", status_code=201, response_model=SubscriptionWithSecret, summary="Subscribe a URL to events")
def create(body: NewSubscription, session: SessionDep, caller: AdminCaller, now: NowDep) -> SubscriptionOut:
    row = webhooks.create_subscription(session, name=body.name, url=str(body.url), events=body.events,
                                       actor=caller.actor, now=now)
    return _out(row, SubscriptionWithSecret)


@router.get("", response_model=list[SubscriptionOut], summary="Every subscription")
def list_all(session: SessionDep, caller: AdminCaller) -> list[SubscriptionOut]:
    return [_out(r) for r in webhooks.list_subscriptions(session)]


@router.post("/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret,
             summary="A new secret; the old one keeps signing too for LOYALTY_WEBHOOK_SECRET_OVERLAP_HOURS")
def rotate(subscription_id: SubscriptionId, session: SessionDep, caller: AdminCaller, now: NowDep
           ) -> SubscriptionOut:
    from datetime import timedelta

    overlap = timedelta(hours=get_settings().webhook_secret_overlap_hours)
    return _out(webhooks.rotate_secret(session, subscription_id=subscription_id, overlap=overlap, now=now),
                SubscriptionWithSecret)


@router.put("/{subscription_id}/active", response_model=SubscriptionOut, summary="Pause or resume")
def set_active(subscription_id: SubscriptionId, body: ActiveIn, session: SessionDep, caller: AdminCaller
               ) -> SubscriptionOut:
    return _out(webhooks.set_active(session, subscription_id=subscription_id, active=body.active))


@router.post("/{subscription_id}/replay", response_model=ReplayOut,
             summary="Deliver again every subscribed event of a time range (same event ids)")
def replay(subscription_id: SubscriptionId, body: ReplayIn, session: SessionDep, caller: AdminCaller, now: NowDep
           ) -> ReplayOut:
    return ReplayOut(due=webhooks.replay(session, subscription_id=subscription_id, start=body.start, end=body.end,
                                         now=now))


@router.get("/{subscription_id}/deliveries", response_model=list[DeliveryOut], summary="Latest deliveries")
def deliveries(subscription_id: SubscriptionId, session: SessionDep, caller: AdminCaller) -> list[DeliveryOut]:
    webhooks.get_subscription(session, subscription_id=subscription_id)
    return [from_row(DeliveryOut, d) for d in webhooks.deliveries_of(session, subscription_id=subscription_id)]
