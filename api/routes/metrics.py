"""``/metrics`` for Prometheus, behind its own credential kind: the metrics token.

Not an API key: a scraper should hold no key that could read members. Not a separate port either: with
several uvicorn workers a second listener per worker would collide, and one port is simpler to expose.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from domain.db import get_engine
from domain.errors import Unauthorized
from domain.settings import get_settings
from domain.telemetry import exposition, metrics_token_accepted

router = APIRouter(tags=["operations"])


def require_metrics_token(authorization: Annotated[str | None, Header()] = None) -> None:
    if not metrics_token_accepted(authorization, token=get_settings().metrics_token):
        raise Unauthorized("send 'Authorization: Bearer <LOYALTY_METRICS_TOKEN>'", code="metrics_token_required")


require_metrics_token.credential_kind = "metrics_token"  # type: ignore[attr-defined]  # read by the route test


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_metrics_token)])
def metrics() -> Response:
    """Prometheus text exposition: this API's metrics (all workers') and the database's facts."""
    return Response(exposition(get_engine()), media_type=CONTENT_TYPE_LATEST)
