"""The FastAPI application: routers and error handlers only."""

from __future__ import annotations

from fastapi import FastAPI

from api.edge import install_edge
from api.errors import install_error_handlers
from api.routes import (
    admin,
    campaigns,
    contacts,
    crm,
    exports,
    health,
    journeys,
    members,
    organisations,
    points,
    staff,
    wechat,
)
from domain.settings import get_settings

ROUTERS = [health.router, members.router, points.router, contacts.router, crm.router, journeys.router,
           campaigns.router, admin.router, exports.router, staff.router, wechat.router,
           organisations.router]


def create_app() -> FastAPI:
    app = FastAPI(
        title="Loyalty",
        version="0.1.0",
        description="Membership and loyalty backend: members, points, tiers, the contact gate, journeys, "
                    "WeChat and the call center. Every /v1 call needs "
                    "`Authorization: Bearer <API key or session token>` "
                    "(README, Security).",
    )
    install_error_handlers(app)
    install_edge(app, get_settings())
    for router in ROUTERS:
        app.include_router(router)
    return app
