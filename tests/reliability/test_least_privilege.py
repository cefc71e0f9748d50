"""PostgreSQL least privilege: migrations run as the owner, the app as a role that owns
nothing, so the app's credentials cannot disable the triggers that keep the audit trail
append-only. The roles are made in a throwaway cluster: roles are cluster-wide, and the
machine's shared server is never changed by a test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import make_test_app
from tests.factories import make_user
from tests.support.databases import postgres_or_skip
from tests.support.throwaway_postgres import Cluster, throwaway_cluster
from tracker.audit.services import verify
from tracker.db import get_database

# Each one is what a stolen app credential would try first.
FORBIDDEN = {
    "disable the triggers": "ALTER TABLE audit_events DISABLE TRIGGER ALL",
    "drop a trigger": "DROP TRIGGER audit_events_no_update_delete ON audit_events",
    "truncate the trail": "TRUNCATE audit_events",
    "delete events": "DELETE FROM audit_events WHERE seq > 1",
    "rewrite an event": "UPDATE audit_events SET reason = 'x' WHERE seq = 1",
    "drop the table": "DROP TABLE audit_events",
    "take ownership": "ALTER TABLE audit_events OWNER TO tracker_app",
    "rewrite a note": "UPDATE notes SET text = 'x'",
    "delete a participant": "DELETE FROM participants",
    "move the schema version": "UPDATE alembic_version SET version_num = 'x'",
    "create a table": "CREATE TABLE sneaky (id int)",
    "replay as a replica": "SET session_replication_role = replica",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    postgres_or_skip()  # the PostgreSQL tests run where PostgreSQL does
    with throwaway_cluster() as started:
        with psycopg.connect(started.url.replace("+psycopg", ""), autocommit=True) as admin:
            admin.execute("CREATE ROLE tracker_owner LOGIN")
            admin.execute("CREATE ROLE tracker_app LOGIN")
            admin.execute("CREATE DATABASE study OWNER tracker_owner")
        yield started


def _url(cluster: Cluster, role: str) -> str:
    return f"postgresql+psycopg://{role}@127.0.0.1:{cluster.port}/study"


@pytest.mark.slow
def test_the_app_role_owns_nothing_and_cannot_disable_the_triggers(
    cluster: Cluster, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    owner_url, app_url = _url(cluster, "tracker_owner"), _url(cluster, "tracker_app")
    app = make_test_app(app_url, str(tmp_path), database_owner_url=owner_url)
    upgraded = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "tracker_app" in upgraded.output

    database = get_database(app)
    try:
        with app.app_context(), database.session_scope() as session:  # the app works as itself
            make_user(session, "coordinator", "S01")
        engine = sa.create_engine(app_url)
        with engine.connect() as connection:
            owned = connection.scalar(
                sa.text("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
            )
            assert owned == 0
            connection.rollback()
            refused = {}
            for attempt, statement in FORBIDDEN.items():
                transaction = connection.begin()
                try:
                    connection.exec_driver_sql(statement)
                except sa.exc.DBAPIError as error:
                    refused[attempt] = type(error.orig).__name__
                else:
                    refused[attempt] = None
                finally:
                    transaction.rollback()
        engine.dispose()
        assert refused == dict.fromkeys(FORBIDDEN, "InsufficientPrivilege"), refused
        with database.session_scope() as session:
            result = verify(session)
        assert result.ok and result.events >= 2
    finally:
        database.engine.dispose()
