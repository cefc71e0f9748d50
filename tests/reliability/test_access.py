"""Access (SPEC §9): the lockout is kept in the database, so failures on one server lock the
account on the other; no password, token or session id reaches a log line; the session cookie
is flagged; idle sessions expire."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import login
from tests.factories import PASSWORD
from tests.reliability.seed import open_database, seed_small_study
from tests.reliability.servers import ApiClient, CookieBrowser, gunicorn
from tests.support.databases import scratch_database
from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.auth.models import SignIn, User

GENEROUS_RATE_LIMIT = {"TRACKER_LOGIN_RATE_LIMIT": "1000 per minute"}
LOCKED = "locked after repeated failed logins"


@pytest.mark.slow
def test_lockout_is_shared_by_every_worker(tmp_path: Path) -> None:
    with scratch_database("postgresql", tmp_path) as url:
        study = seed_small_study(url)
        username = study.usernames["coordinator"]
        with (
            gunicorn(url, tmp_path, workers=1, extra_env=GENEROUS_RATE_LIMIT) as first,
            gunicorn(url, tmp_path, workers=1, extra_env=GENEROUS_RATE_LIMIT) as second,
        ):
            assert first.worker_pids() != second.worker_pids()
            assert CookieBrowser(first.url).login(username, PASSWORD).status_code == 302
            # Five failures (the default limit), split over two separate processes.
            for server, count in ((first, 3), (second, 2)):
                for _ in range(count):
                    refused = CookieBrowser(server.url).login(username, "wrong-password-123")
                    assert refused.status_code == 200
                    assert "Invalid username or password" in refused.text
            for server in (first, second):
                locked = CookieBrowser(server.url).login(username, PASSWORD)
                assert locked.status_code == 200, "the right password got in during a lockout"
                assert LOCKED in locked.text
            # Another account is not affected.
            other = CookieBrowser(second.url).login(study.usernames["investigator"], PASSWORD)
            assert other.status_code == 302
        database = open_database(url)
        try:
            with database.session_scope() as session:
                user = session.scalars(sa.select(User).where(User.username == username)).one()
                assert user.locked_until is not None
                locks = session.scalar(
                    sa.select(sa.func.count()).where(
                        AuditEvent.action == "auth.account_locked",
                        AuditEvent.entity_id == str(user.id),
                    )
                )
                assert locks == 1
        finally:
            database.engine.dispose()


@pytest.mark.slow
def test_no_secret_reaches_a_log_line_and_cookies_are_flagged(tmp_path: Path) -> None:
    with scratch_database("sqlite", tmp_path) as url:
        study = seed_small_study(url)
        username = study.usernames["coordinator"]
        new_password = "brand-new-passphrase-" + "7f3a9c"
        secrets_seen: set[str] = {PASSWORD, new_password, *study.tokens.values()}
        with gunicorn(
            url, tmp_path, workers=2, extra_env=GENEROUS_RATE_LIMIT, log_level="debug"
        ) as server:
            browser = CookieBrowser(server.url)
            # A password typed into the username field by mistake is a secret too.
            browser.login(PASSWORD, "x")
            assert browser.login(username, "wrong-" + PASSWORD).status_code == 200
            signed_in = browser.login(username, PASSWORD)
            assert signed_in.status_code == 302
            session_cookie = browser.cookies["tracker_session"]
            secrets_seen.add(session_cookie)
            assert browser.request("GET", "/").status_code == 200
            token = re.search(
                r'name="csrf_token"[^>]*value="([^"]+)"',
                browser.request("GET", "/account/password").text,
            )
            assert token
            secrets_seen.add(token.group(1))
            changed = browser.request(
                "POST",
                "/account/password",
                data={
                    "current_password": PASSWORD,
                    "new_password": new_password,
                    "confirm_password": new_password,
                    "csrf_token": token.group(1),
                },
            )
            assert changed.status_code == 302, changed.text[-2000:]
            # The old session ended with the change.
            assert browser.request("GET", "/").status_code == 302
            for role, bearer in study.tokens.items():
                client = ApiClient(server.url, bearer)
                # The coordinator's token ended with their password change (SPEC §9).
                expected = 401 if role == "coordinator" else 200
                assert client.get("/api/v1/protocol").status_code == expected, role
                client.get("/api/v1/participants?site=S01")
            # A bad token is refused without being echoed.
            bad = ApiClient(server.url, "trk_" + "not-a-token-" + "q" * 20)
            secrets_seen.add(bad.token)
            assert bad.get("/api/v1/participants").status_code == 401
            assert CookieBrowser(server.url).login(username, new_password).status_code == 302
            set_cookies = list(browser.set_cookie_headers)
        logs = server.log_text()

    # The logs were captured (this test would prove nothing on an empty log).
    assert "POST /login" in logs and "/api/v1/participants" in logs and "Booting worker" in logs
    leaks = [secret for secret in secrets_seen if secret in logs]
    assert not leaks, f"{len(leaks)} secret(s) appear in the logs"
    # A password or token split by URL encoding must not appear either.
    from urllib.parse import quote

    assert not [s for s in secrets_seen if quote(s, safe="") in logs]

    session_cookies = [c for c in set_cookies if c.startswith("tracker_session=")]
    assert session_cookies
    for header in session_cookies:
        flags = [part.strip().lower() for part in header.split(";")[1:]]
        assert "httponly" in flags, header
        assert "secure" in flags, header
        assert "samesite=lax" in flags, header
    # The signed-in session cookie is permanent for the idle timeout (30 min), no longer.
    expiring = [h for h in session_cookies if "expires=" in h.lower()]
    assert expiring, session_cookies


def test_sessions_expire_when_idle(client: FlaskClient, db_session: Session, signed_in) -> None:  # type: ignore[no-untyped-def]
    user = signed_in("coordinator")
    assert client.get("/").status_code == 200
    clock.travel(timedelta(minutes=29))
    assert client.get("/").status_code == 200, "a session in use must not expire"
    clock.travel(timedelta(minutes=29))
    assert client.get("/").status_code == 200, "each request restarts the idle time"
    clock.travel(timedelta(minutes=31))
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    # Ended on the server, not just forgotten by the browser: travelling back cannot revive it.
    ended = db_session.scalars(sa.select(SignIn).where(SignIn.user_id == user.id)).one()
    db_session.refresh(ended)
    assert ended.end_reason == "idle" and ended.ended_at is not None
    assert (
        db_session.scalar(
            sa.select(sa.func.count()).where(
                AuditEvent.action == "auth.session_expired", AuditEvent.entity_id == str(user.id)
            )
        )
        == 1
    )


def test_session_cookie_flags_in_testing_are_httponly_and_lax(
    client: FlaskClient,
    user_factory,  # type: ignore[no-untyped-def]
) -> None:
    response = login(client, user_factory("coordinator").username)
    assert response.status_code == 302
    header = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("tracker_session=")
    )
    lowered = header.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered
