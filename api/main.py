"""The FastAPI application: routers and error handlers only."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.console import install_console
from api.edge import install_edge
from api.errors import install_error_handlers
from api.hot import close_hot_database
from api.hot import router as hot_router
from api.observability import RequestEdgeMiddleware
from api.openapi import install_openapi
from api.routes import (
    admin,
    campaigns,
    contacts,
    crm,
    exports,
    health,
    journeys,
    me,
    members,
    metrics,
    organisations,
    points,
    privacy,
    scores,
    staff,
    templates,
    webhooks,
    wechat,
)
from domain import telemetry
from domain.settings import get_settings
from domain.wechat.rules import configuration_problem

ROUTERS = [hot_router, health.router, members.router, points.router, contacts.router, crm.router, journeys.router,
           campaigns.router, templates.router, admin.router, exports.router, staff.router, me.router, wechat.router,
           organisations.router, metrics.router, webhooks.router, scores.router,
           privacy.router]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await close_hot_database(app)
    telemetry.mark_process_dead(os.getpid())  # a stopped worker's live gauges leave the sums


def create_app() -> FastAPI:
    settings = get_settings()
    problem = configuration_problem(app_id=settings.wechat_app_id, token=settings.wechat_token,
                                    encoding_aes_key=settings.wechat_encoding_aes_key)
    if problem:
        raise RuntimeError(problem)  # refuse to start: every way of serving the API builds it here
    # /docs and /redoc from Swagger UI and ReDoc files shipped inside the fastapi-offline package: the docs
    # work on a machine without internet access (FastAPI's own pages load them from a CDN).
    app = FastAPIOffline(
        lifespan=lifespan,
        redoc_url=None,  # served by api.console with a content policy: ReDoc's bundle fetches a logo from its CDN
        title="Loyalty",
        version="0.1.0",
        description="Membership and loyalty backend: members, points, tiers, the contact gate, journeys, "
                    "WeChat and the call center. Every /v1 call needs "
                    "`Authorization: Bearer <API key or session token>` "
                    "(README, Security).",
    )
    install_error_handlers(app)
    install_edge(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app, ROUTERS)  # security scheme, common statuses, replays, tags, examples: for every route at once
    install_console(app)  # adds the console's header middleware: it must stay inside the request id's
    # Outermost: 413/429 answers of the edge get a request id and are counted too, and uvicorn's access line is
    # written inside the request id's context (a middleware outside it would run the app in another task).
    app.add_middleware(RequestEdgeMiddleware)
    return app
