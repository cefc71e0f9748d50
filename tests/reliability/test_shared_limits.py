"""The login limit per address is one limit, whatever the number of workers (SPEC §9): shared
through Redis; production refuses to start several workers that would each keep their own;
behind a proxy the address comes from TRACKER_PROXY_FIX hops, never from a header by
default."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from tests.conftest import csrf_token, make_test_app
from tests.reliability.servers import GUNICORN, CookieBrowser, gunicorn, server_environment
from tests.support.databases import scratch_database
from tracker import ROOT, migrate
from tracker.db import get_database

ATTEMPTS = 39
LIMIT = 20


def _attempt(browser: CookieBrowser) -> int:
    page = browser.request("GET", "/login")
    token = page.text.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    answer = browser.request(
        "POST",
        "/login",
        data={"username": "nobody-here", "password": "not-a-password", "csrf_token": token},
    )
    return answer.status_code


@pytest.mark.slow
def test_the_login_limit_holds_across_two_workers_through_redis(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        migrate.upgrade(url)
        env = {
            "TRACKER_LOGIN_RATE_LIMIT": f"{LIMIT} per minute",
            "TRACKER_RATELIMIT_KEY_PREFIX": f"test-{secrets.token_hex(6)}",
        }
        with gunicorn(url, tmp_path, workers=2, extra_env=env) as server:
            statuses = []
            for _ in range(ATTEMPTS):
                browser = CookieBrowser(server.url)  # a new connection: any worker may answer
                statuses.append(_attempt(browser))
    assert statuses.count(429) == ATTEMPTS - LIMIT, statuses
    assert set(statuses) == {200, 429}


def test_production_refuses_several_workers_with_the_limiter_in_memory(tmp_path: Path) -> None:
    env = server_environment(
        f"sqlite:///{tmp_path / 'study.db'}",
        tmp_path / "instance",
        TRACKER_RATELIMIT_STORAGE_URI="memory://",
    )
    done = subprocess.run(
        [GUNICORN, "-w", "2", "-b", "127.0.0.1:0", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "2 workers with TRACKER_RATELIMIT_STORAGE_URI=memory://" in done.stdout + done.stderr


def _login_statuses(app, forwarded: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    client = app.test_client()
    statuses = []
    for address in forwarded:
        token = csrf_token(client, "/login")
        statuses.append(
            client.post(
                "/login",
                data={"username": "x-user", "password": "y-password", "csrf_token": token},
                headers={"X-Forwarded-For": address},
            ).status_code
        )
    return statuses


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    spoofed = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    with scratch_database("sqlite", tmp_path) as url:
        migrate.upgrade(url)
        # Without TRACKER_PROXY_FIX a forged X-Forwarded-For buys no new budget; with one
        # trusted hop, the proxy's X-Forwarded-For is the client's address.
        for hops, expected in (("0", [200, 200, 429]), ("1", [200, 200, 200])):
            app = make_test_app(
                url,
                str(tmp_path / f"instance-{hops}"),
                environ={"TRACKER_PROXY_FIX": hops},
                RATELIMIT_ENABLED=True,
                RATELIMIT_STORAGE_URI="memory://",
                TRACKER_LOGIN_RATE_LIMIT="2 per minute",
            )
            try:
                assert _login_statuses(app, spoofed) == expected, hops
            finally:
                get_database(app).engine.dispose()


def test_the_proxy_setting_is_checked(tmp_path: Path) -> None:
    from tracker.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="TRACKER_PROXY_FIX"):
        load_settings({"TRACKER_PROXY_FIX": "X-Forwarded-For"}, tmp_path)
