from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login, make_test_app
from tests.factories import PASSWORD
from tests.support.databases import scratch_database
from tracker import migrate
from tracker.audit.models import AuditEvent
from tracker.auth.models import SignIn, User
from tracker.db import get_database, utcnow


def _actions(session: Session, user: User) -> list[str]:
    return list(
        session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.entity_type == "user", AuditEvent.entity_id == str(user.id))
            .order_by(AuditEvent.seq)
        )
    )


def test_login_opens_the_dashboard_and_is_audited(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    user = user_factory("coordinator")
    response = login(client, user.username)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.get_data(as_text=True)
    assert "auth.login" in _actions(db_session, user)


def test_wrong_password_is_refused_and_audited(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    user = user_factory("coordinator")
    response = login(client, user.username, "wrong-password-123")
    assert response.status_code == 200
    assert "Invalid username or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert _actions(db_session, user)[-1] == "auth.login_failed"
    db_session.expire_all()
    assert db_session.get(User, user.id).failed_login_count == 1


def test_unknown_user_gets_the_same_message(client: FlaskClient, db_session: Session) -> None:
    response = login(client, "nobody-here", "whatever-password")
    assert "Invalid username or password." in response.get_data(as_text=True)
    event = db_session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert event.action == "auth.login_failed" and event.reason == "unknown username"


def test_lockout_after_repeated_failures_even_with_the_right_password(
    app: Flask, client: FlaskClient, user_factory, db_session: Session
) -> None:
    user = user_factory("investigator")
    for _ in range(app.config["TRACKER_LOGIN_MAX_FAILURES"]):
        login(client, user.username, "not-the-password")
    response = login(client, user.username, PASSWORD)
    assert response.status_code == 200
    assert "locked" in response.get_data(as_text=True)
    db_session.expire_all()
    locked = db_session.get(User, user.id)
    assert locked.locked_until is not None and locked.locked_until > utcnow()
    assert "auth.account_locked" in _actions(db_session, user)
    # The lock lives in the database, so another client (another worker) sees it too.
    other = app.test_client()
    other_response = login(other, user.username, PASSWORD)
    assert "locked" in other_response.get_data(as_text=True), other_response.get_data(as_text=True)[
        -700:
    ]


def test_lock_expires(client: FlaskClient, user_factory, db_session: Session) -> None:
    user = user_factory("coordinator")
    db_session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(locked_until=utcnow() - timedelta(seconds=1))
    )
    db_session.commit()
    assert login(client, user.username).status_code == 302


def test_session_copied_before_logout_is_dead_after_it(
    app: Flask, client: FlaskClient, signed_in
) -> None:
    signed_in("coordinator")
    cookie = client.get_cookie("tracker_session")
    assert cookie is not None
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("tracker_session", cookie.value)
    response = thief.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_login_issues_a_fresh_session(app: Flask, client: FlaskClient, user_factory) -> None:
    user = user_factory("coordinator")
    client.get("/login")
    before = client.get_cookie("tracker_session").value
    login(client, user.username)
    after = client.get_cookie("tracker_session").value
    assert before != after
    # The pre-login cookie does not carry the login.
    planted = app.test_client()
    planted.set_cookie("tracker_session", before)
    assert planted.get("/").status_code == 302


def test_idle_session_expires(client: FlaskClient, signed_in, db_session: Session) -> None:
    user = signed_in("therapist")
    assert client.get("/").status_code == 200
    db_session.execute(
        sa.update(SignIn)
        .where(SignIn.user_id == user.id)
        .values(last_seen_at=utcnow() - timedelta(minutes=31))
    )
    db_session.commit()
    response = client.get("/")
    assert response.status_code == 302
    assert "auth.session_expired" in _actions(db_session, user)


def test_password_change_ends_every_session_of_the_user(
    app: Flask, client: FlaskClient, signed_in
) -> None:
    user = signed_in("coordinator")
    other_device = app.test_client()
    login(other_device, user.username)
    assert other_device.get("/").status_code == 200
    token = csrf_token(client, "/account/password")
    response = client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": "a-brand-new-passphrase",
            "confirm_password": "a-brand-new-passphrase",
        },
    )
    assert response.status_code == 302
    assert other_device.get("/").status_code == 302
    assert client.get("/").status_code == 302
    assert login(app.test_client(), user.username, "a-brand-new-passphrase").status_code == 302


def test_form_without_csrf_token_is_refused(
    client: FlaskClient, user_factory, db_session: Session
) -> None:
    user = user_factory("coordinator")
    client.get("/login")
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert "auth.login" not in _actions(db_session, user)


def test_open_redirect_is_refused(client: FlaskClient, user_factory) -> None:
    user = user_factory("coordinator")
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_per_address_rate_limit(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Its own database: these requests commit for real.
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        limited = make_test_app(
            url, str(tmp_path), RATELIMIT_ENABLED=True, TRACKER_LOGIN_RATE_LIMIT="3 per minute"
        )
        try:
            client = limited.test_client()
            statuses = []
            for _ in range(4):
                token = csrf_token(client, "/login")
                data = {"username": "x-user", "password": "y-password", "csrf_token": token}
                statuses.append(client.post("/login", data=data).status_code)
            # Another address has its own budget.
            other = limited.test_client()
            token = csrf_token(other, "/login")
            other_status = other.post(
                "/login",
                data={"username": "x", "password": "y", "csrf_token": token},
                environ_overrides={"REMOTE_ADDR": "127.0.0.9"},
            ).status_code
        finally:
            get_database(limited).engine.dispose()
    assert statuses == [200, 200, 200, 429]
    assert other_status == 200
