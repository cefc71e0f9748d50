"""Nothing lost: an online SQLite backup restores to the same data with a verifying chain."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from tests.conftest import make_test_app
from tests.factories import make_team, make_user
from tracker import migrate
from tracker.audit.services import verify
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant


def test_backup_and_restore_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate.upgrade(url)
    app = make_test_app(url, str(tmp_path))
    database = get_database(app)
    runner = app.test_cli_runner()
    try:
        with database.session_scope() as session:
            team = make_team(session, "S01")
            run_histories([protocol_history(session, team, random.Random(31), "integration")])
        with database.session_scope() as session:
            before = [
                (p.study_id, p.state, p.version) for p in session.scalars(sa.select(Participant))
            ]
            head = verify(session).head
        backup = tmp_path / "backup.db"
        result = runner.invoke(args=["db", "backup", "-o", str(backup)])
        assert result.exit_code == 0, result.output
        assert head in result.output
        refused = runner.invoke(args=["db", "backup", "-o", str(backup)])
        assert refused.exit_code == 1 and "exists" in refused.output

        with database.session_scope() as session:  # a change after the backup
            session.execute(
                sa.update(Participant).values(state="withdrawn", withdrawal_category="other")
            )
        assert runner.invoke(args=["db", "restore", str(backup)]).exit_code == 1  # needs --yes
        database.engine.dispose()
        restored = runner.invoke(args=["db", "restore", str(backup), "--yes"])
        assert restored.exit_code == 0, restored.output
        with database.session_scope() as session:
            after = [
                (p.study_id, p.state, p.version) for p in session.scalars(sa.select(Participant))
            ]
            check = verify(session)
        assert after == before and check.ok and check.head == head
    finally:
        database.engine.dispose()


def test_a_backup_that_does_not_verify_is_not_restored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate.upgrade(url)
    app = make_test_app(url, str(tmp_path))
    database = get_database(app)
    try:
        with database.session_scope() as session:
            make_user(session, "auditor", None)
        backup = tmp_path / "backup.db"
        assert app.test_cli_runner().invoke(args=["db", "backup", "-o", str(backup)]).exit_code == 0
        with sqlite3.connect(backup) as connection:  # tampered with at rest
            connection.execute("DROP TRIGGER audit_events_no_update")
            connection.execute("UPDATE audit_events SET reason = 'forged' WHERE seq = 1")
        connection.close()
        result = app.test_cli_runner().invoke(args=["db", "restore", str(backup), "--yes"])
        assert result.exit_code == 1 and "does not verify" in result.output
    finally:
        database.engine.dispose()


def test_postgresql_backups_point_to_pg_dump(app) -> None:  # type: ignore[no-untyped-def]
    from tracker.backup import BackupError, sqlite_path

    with pytest.raises(BackupError, match="pg_dump"):
        sqlite_path("postgresql+psycopg://u@h/db")
