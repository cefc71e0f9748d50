"""Shared fixtures: the app on each database, a transaction per test, clients, factories.

Database tests run on SQLite always and on PostgreSQL when TRACKER_TEST_POSTGRES_URL is set
(TRACKER_REQUIRE_POSTGRES=1 turns its absence into a failure). The schema is built once per
backend by the real migrations; each test runs inside a transaction rolled back at its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests.factories import PASSWORD, make_user
from tests.support.databases import BACKENDS, scratch_database
from tracker import create_app, migrate
from tracker.auth.models import User
from tracker.db import get_database, make_session_factories

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


class BufferedClient(FlaskClient):
    """A test client that reads each response whole before returning it. Tests share one
    database connection; a streamed export left unread (a PostgreSQL COPY in progress) would
    hold that connection from the next request, as it never does in a server, where each
    request has its own."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


class ReadSessionOnSharedConnection(Session):
    """A read session on the tests' one connection. Its savepoint encloses the savepoints of
    the write units made while it reads (``tracker.db.write_unit``), so rolling it back would
    undo them, as it never could on a server, where each has its own connection. A read
    session has nothing of its own to undo, so here it releases its savepoint instead."""

    def _release(self) -> None:
        if self.in_transaction():
            try:
                self.commit()
            except Exception:
                super().rollback()
                raise

    def rollback(self) -> None:
        self._release()

    def close(self) -> None:
        self._release()
        super().close()


def make_test_app(
    database_url: str, instance_path: str, environ: dict[str, str] | None = None, **extra: object
) -> Flask:
    overrides = {
        "env": "testing",
        "database_url": database_url,
        "instance_path": instance_path,
        "secret_key": TEST_SECRET,
        "RATELIMIT_ENABLED": False,
        **extra,
    }
    app = create_app(overrides=overrides, environ=environ or {})
    app.test_client_class = BufferedClient
    return app


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_database(backend, tmp_path_factory.mktemp(f"db-{backend}")) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    application = make_test_app(database_url, str(tmp_path_factory.mktemp("instance")))
    yield application
    get_database(application).engine.dispose()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test; requests made by the
    test client join the same transaction through savepoints."""
    database = get_database(app)
    connection = database.engine.connect()
    outer = connection.begin()
    writes, reads = make_session_factories(connection, join_transaction_mode="create_savepoint")
    reads.class_ = ReadSessionOnSharedConnection
    original = database.bind_sessions((writes, reads))
    session = database.session_factory()
    # No app context is held here: each request must get its own (and its own g).
    try:
        yield session
    finally:
        session.close()
        database.bind_sessions(original)
        outer.rollback()
        connection.close()


@pytest.fixture
def client(app: Flask, db_session: Session) -> FlaskClient:
    return app.test_client()


CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} (status {page.status_code})"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/login")
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


@pytest.fixture
def user_factory(db_session: Session):  # type: ignore[no-untyped-def]
    def factory(role: str = "coordinator", **kwargs: object) -> User:
        user = make_user(db_session, role, **kwargs)  # type: ignore[arg-type]
        db_session.commit()  # releases to the outer transaction; rolled back after the test
        return user

    return factory


@pytest.fixture
def signed_in(client: FlaskClient, user_factory):  # type: ignore[no-untyped-def]
    """Sign in a new user of the given role and return them."""

    def sign_in(role: str = "coordinator", **kwargs: object) -> User:
        user = user_factory(role, **kwargs)
        response = login(client, user.username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return sign_in


@pytest.fixture(autouse=True)
def _checkpoints_of_this_test(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Each test's data is rolled back after it, so the checkpoints it signed must go too:
    every test that uses the app gets a checkpoint directory of its own."""
    if "app" not in request.fixturenames:
        yield
        return
    from tracker.audit.services import CHECKPOINTS

    store = request.getfixturevalue("app").extensions[CHECKPOINTS]
    directory = store.directory
    store.directory = tmp_path_factory.mktemp("checkpoints")
    try:
        yield
    finally:
        store.directory = directory


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """Tests that move the clock, or switch the (process-wide) rate limiter on, leave both
    as they found them."""
    from tracker import clock
    from tracker.extensions import limiter

    enabled = limiter.enabled
    yield
    clock.reset()
    limiter.enabled = enabled


@pytest.fixture
def team(db_session: Session):  # type: ignore[no-untyped-def]
    """A site team: coordinator, investigator and two therapists at S01."""
    from tests.factories import make_team

    return make_team(db_session, "S01")


@pytest.fixture
def dosing(db_session: Session, team):  # type: ignore[no-untyped-def]
    """A participant in dosing (cycle 1) with a dosing session that started 2 hours ago:
    (participant, session, start)."""
    import random
    from datetime import timedelta

    import sqlalchemy as sa

    from tests.factories import without_pregnancy_tests
    from tracker import clock
    from tracker.histories import protocol_history, run_histories
    from tracker.participants.models import Participant
    from tracker.participants.transitions import apply_transition
    from tracker.sessions import services as session_services

    run_histories([protocol_history(db_session, team, random.Random(7), "preparation")])
    participant = db_session.scalar(sa.select(Participant).order_by(Participant.id.desc()).limit(1))
    clock.travel(timedelta(days=4))
    without_pregnancy_tests(participant)
    apply_transition(
        db_session,
        team.as_coordinator,
        participant,
        "start_dosing",
        expected_version=participant.version,
    )
    start = clock.now() - timedelta(hours=2)
    row = session_services.schedule_session(
        db_session,
        team.as_coordinator,
        participant,
        kind="dosing",
        scheduled_at=start,
        therapists=[t.username for t in team.therapists],
    )
    session_services.update_session(db_session, team.as_therapist(), row, started_at=start)
    return participant, row, start
