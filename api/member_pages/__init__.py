"""The member's own mobile pages (WeChat H5): server-rendered Jinja2, every asset inline, nothing from a CDN.

They are few and small: a member mostly uses the brand's app or mini-program against ``/v1/me``; these pages
cover what must happen inside WeChat's browser, such as binding a phone at the end of the OAuth flow."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Nothing loads from anywhere; forms post only here; no framing; nothing cached (the last page holds the
member's session); no referrer carries the URL elsewhere."""
