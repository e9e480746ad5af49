"""The console: server-rendered pages for agents, supervisors, marketers and operators, under ``/console``.

Pages follow the API's rules: they call the same services (no page reaches past a service), show personal data
masked by the same right, write the same access log, and declare who may open them. Staff log in with their
staff account; the page session is the staff session's token in an HttpOnly, SameSite=Strict cookie (so another
site cannot make the browser post a form with it). Every asset is served from this package: no CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.console.auth import LoginRequired
from api.console.pages import router, templates
from api.errors import status_for
from domain.errors import DomainError

STATIC = Path(__file__).parent / "static"
LOCAL_ONLY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
              "script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; connect-src 'self'; "
              "frame-ancestors 'none'; form-action 'self'")
"""Pages load nothing from another host, and no other site may frame them (clickjacking)."""


class LocalOnlyHeaders:
    """The pages' content policy on the console's and the docs' answers. Pure ASGI, and the other paths pass
    straight through: a ``BaseHTTPMiddleware`` ran every request of the API, the hot routes included, in an
    extra task with its own streams (about a fifth of a hot request's CPU: docs/hot-paths.md)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/console", "/docs", "/redoc")):
            await self.app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (("Content-Security-Policy", LOCAL_ONLY), ("X-Content-Type-Options", "nosniff")):
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, with_policy)


def install_console(app: FastAPI) -> None:
    """Mount the console's pages and assets, and send a visitor without a live session to the login page."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console_static")

    app.add_middleware(LocalOnlyHeaders)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - ReDoc",
                              redoc_js_url="/static-offline-docs/redoc.standalone.js", with_google_fonts=False,
                              redoc_favicon_url="/static-offline-docs/favicon.png")

    api_handler = app.exception_handlers[DomainError]

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        """On a page, a refusal is a page (a person reads it); everywhere else the API's JSON error shape."""
        if not request.url.path.startswith("/console"):
            return await api_handler(request, exc)  # type: ignore[misc,no-any-return]
        status = status_for(exc)
        heading = {403: "Not for your role", 404: "Not found"}.get(status, "Refused")
        return templates.TemplateResponse(request, "error.html", {"status": status, "heading": heading,
                                                                  "message": exc.message}, status_code=status)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        response = RedirectResponse(f"/console/login?next={exc.next_path}", status_code=303)
        if exc.clear_cookie:
            response.delete_cookie(exc.cookie, path="/console")
        return response
