"""The request owns the transaction: one commit at the edge, a rollback on any error."""

from __future__ import annotations

import sqlalchemy as sa

from tests.conftest import make_test_app
from tests.support.databases import scratch_database
from tracker import migrate
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor, record_event
from tracker.db import get_database, get_session
from tracker.errors import RuleViolation
from tracker.security import public


def test_error_after_a_write_leaves_nothing_and_success_commits(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        app = make_test_app(url, str(tmp_path), WTF_CSRF_ENABLED=False)

        @app.route("/_test/write/<outcome>", methods=["POST"])
        @public
        def write(outcome: str) -> str:
            record_event(get_session(), Actor.system("test"), "test.write", "thing", outcome)
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
