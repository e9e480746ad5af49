"""A real API server on committed data, and Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _last_noon_in_shanghai() -> datetime:
    """The pages' clock: the latest 12:00 in Shanghai that has passed. Daytime, so no test depends on whether
    CI runs in the members' quiet hours; and not in the future, which signed tokens would refuse."""
    real = datetime.now(UTC)
    noon = real.replace(hour=4, minute=0, second=0, microsecond=0)
    return noon if noon <= real else noon - timedelta(days=1)


CLOCK = _last_noon_in_shanghai()


def _chromium() -> str:
    found = os.environ.get("LOYALTY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is missing: `./run test` installs Debian's package (apt-get install chromium)")
    return found


@pytest.fixture
def live_server(committed_engine) -> Iterator[str]:
    """The whole app served by uvicorn in a thread, on a port the OS hands out."""
    from api.deps import get_now
    from api.main import create_app

    app = create_app()
    app.dependency_overrides[get_now] = lambda: CLOCK
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a shared CI machine can be slow to render Swagger UI's large page

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    context = chromium.new_context(viewport={"width": 1360, "height": 860}, locale="en-US")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the console confirms irreversible actions
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    """Written by the test run and committed: the README shows them."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
