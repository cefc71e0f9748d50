"""The request owns the transaction: one commit at the edge, a rollback on any error."""

from __future__ import annotations

import sqlalchemy as sa

from tests.conftest import make_test_app
from tests.support.databases import scratch_database
from tracker import migrate
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor, record_event
from tracker.db import get_database, get_db
from tracker.errors import RuleViolation
from tracker.security import public


def test_error_after_a_write_leaves_nothing_and_success_commits(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        app = make_test_app(url, str(tmp_path), WTF_CSRF_ENABLED=False)

        @app.route("/_test/write/<outcome>", methods=["POST"])
        @public
        def write(outcome: str) -> str:
            record_event(get_db(), Actor.system("test"), "test.write", "thing", outcome)
            if outcome == "crash":
                raise RuntimeError("boom after the write")
            if outcome == "refused":
                raise RuleViolation("refused after the write", ["a reason"])
            return "ok"

        client = app.test_client()
        try:
            assert client.post("/_test/write/crash").status_code == 500
            assert client.post("/_test/write/refused").status_code == 422
            assert client.post("/_test/write/ok").status_code == 200
            with get_database(app).session_scope() as session:
                written = list(
                    session.scalars(
                        sa.select(AuditEvent.entity_id).where(AuditEvent.action == "test.write")
                    )
                )
        finally:
            get_database(app).engine.dispose()
    assert written == ["ok"]


def test_a_pool_with_no_free_connection_is_a_503(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every connection of the pool taken (a slow export elsewhere, a burst): the request waits
    the pool timeout and answers 503 with the reason, never a 500."""
    from tracker.db import Database, create_engine

    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        app = make_test_app(url, str(tmp_path))
        small = Database(create_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.2))
        app.extensions["tracker.db"] = small

        @app.route("/_test/read")
        @public
        def read() -> str:
            get_db().execute(sa.select(1))
            return "ok"

        client = app.test_client()
        held = small.engine.connect()
        try:
            page = client.get("/_test/read")
            api = client.get("/api/v1/health")
        finally:
            held.close()
            small.engine.dispose()
        assert client.get("/_test/read").status_code == 200
        small.engine.dispose()
    assert page.status_code == 503 and "not reachable" in page.get_data(as_text=True)
    assert api.status_code == 503
    assert api.get_json()["error"]["code"] == "service_unavailable"


def test_a_read_request_cannot_write(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A GET's session refuses a change (its SQLite transaction began without the write lock);
    the change belongs in write_unit, which commits it in a unit of its own."""
    from tracker.db import write_unit

    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        app = make_test_app(url, str(tmp_path))

        @app.route("/_test/read-writes/<how>")
        @public
        def read_writes(how: str) -> str:
            session = get_db()
            if how == "directly":
                record_event(session, Actor.system("test"), "test.read_write", "thing", how)
            else:
                with write_unit(session) as writes:
                    record_event(writes, Actor.system("test"), "test.read_write", "thing", how)
            return "ok"

        client = app.test_client()
        try:
            assert client.get("/_test/read-writes/directly").status_code == 500
            assert client.get("/_test/read-writes/in-a-unit").status_code == 200
            with get_database(app).session_scope() as session:
                written = list(
                    session.scalars(
                        sa.select(AuditEvent.entity_id).where(
                            AuditEvent.action == "test.read_write"
                        )
                    )
                )
        finally:
            get_database(app).engine.dispose()
    assert written == ["in-a-unit"]


def test_pages_answer_503_when_the_database_cannot_be_reached(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A signed-in page whose database is gone: a 503 page that says so (the error page must
    not ask the database for the signed-in user again, which would make it a bare 500)."""
    app = make_test_app(f"sqlite:///{tmp_path / 'missing' / 'tracker.db'}", str(tmp_path))
    client = app.test_client()
    with client.session_transaction() as browser_session:
        browser_session["_user_id"] = "a-login-token"
    page = client.get("/participants/")
    api = client.get("/api/v1/participants", headers={"Authorization": "Bearer trk_x"})
    get_database(app).engine.dispose()
    assert page.status_code == 503, page.get_data(as_text=True)[:500]
    assert "not reachable" in page.get_data(as_text=True)
    assert page.headers["Retry-After"] == "30"
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "service_unavailable"
