"""End-to-end fixtures: the real app served over HTTP, driven by Debian's Chromium.

Nothing here downloads a browser: Playwright launches ``/usr/bin/chromium``. Without it the
tests are skipped, or fail when TRACKER_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import make_test_app
from tests.factories import make_site, make_user
from tracker import migrate
from tracker.auth.models import SignIn, User
from tracker.db import get_database

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent.parent
ARTIFACTS = REPO / "artifacts" / "e2e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_BROWSER = os.environ.get("TRACKER_REQUIRE_BROWSER") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e carries the ``e2e`` marker (this hook sees all items)."""
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"end-to-end tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(f"TRACKER_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A fresh context (no cookies) and page per test, relative URLs resolved on the server."""
    context = browser.new_context(
        base_url=live_server.base_url, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """``screenshot(page, "step")`` saves artifacts/e2e/<test name>-<step>.png (full page)."""
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")

    def save(page: Page, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{test_name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', step)}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    return save


# --- the live server -------------------------------------------------------------------------


@dataclass
class LiveServer:
    base_url: str
    app: Flask

    def create_user(
        self, role: str = "coordinator", site: str | None = "S01", username: str | None = None
    ) -> User:
        """A user made through the services (audited); the password is ``tests.factories.PASSWORD``.

        The returned object is detached but loaded (``username``, ``printed_name``, ``role``).
        """
        username = username or f"{role}-{secrets.token_hex(3)}"
        with get_database(self.app).session_scope() as session:
            user = make_user(session, role, site=site, username=username)
            session.flush()
            _ = user.site.code if user.site is not None else None  # load it before closing
        return user

    def create_site(self, code: str = "S01", name: str | None = None) -> str:
        with get_database(self.app).session_scope() as session:
            return make_site(session, code, name).code

    def open_sign_ins(self, username: str) -> int:
        """How many login sessions of this user are not ended."""
        with get_database(self.app).session_scope() as session:
            return int(
                session.scalar(
                    sa.select(sa.func.count(SignIn.id))
                    .join(User, SignIn.user_id == User.id)
                    .where(User.username == username, SignIn.ended_at.is_(None))
                )
                or 0
            )


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{root / 'tracker-e2e.db'}"
    migrate.upgrade(url)
    app = make_test_app(url, str(root / "instance"))
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        get_database(app).engine.dispose()
