"""Signed checkpoints of the chain head (SPEC §6): what a hash chain alone cannot show, a
cut-off tail, a recomputed chain or an older backup, the checkpoints do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.factories import make_user
from tracker import clock
from tracker.audit.chain import compute_hash
from tracker.audit.checkpoints import LATEST
from tracker.audit.models import AuditEvent
from tracker.audit.services import CHECKPOINTS, verify
from tracker.config import ConfigError, load_settings
from tracker.db import get_database


def _cli(app: Flask, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=list(args))


def _sql(app: Flask, *statements: str) -> None:
    with get_database(app).engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def _events(app: Flask) -> int:
    with get_database(app).engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT count(*) FROM audit_events")) or 0)


def test_activity_writes_a_signed_checkpoint_and_verify_holds_the_chain_to_it(
    study: Flask,
) -> None:
    store = study.extensions[CHECKPOINTS]
    files = store.files()
    assert files, "the first commit with audit events writes a checkpoint"
    written = json.loads(files[0].read_text())
    assert set(written) >= {"seq", "head", "written_at", "signature", "key_id"}
    checkpoint = _cli(study, "audit", "checkpoint")
    assert checkpoint.exit_code == 0, checkpoint.output
    outcome = _cli(study, "audit", "verify")
    assert outcome.exit_code == 0, outcome.output
    assert f"{len(store.files())} signed checkpoints hold" in outcome.output


def test_activity_checkpoints_come_every_few_minutes_not_every_commit(study: Flask) -> None:
    store = study.extensions[CHECKPOINTS]
    before = len(store.files())
    with study.app_context(), get_database(study).session_scope() as session:
        make_user(session, "coordinator", "S01")
    assert len(store.files()) == before  # the latest is younger than the interval
    clock.travel(store.interval)
    with study.app_context(), get_database(study).session_scope() as session:
        make_user(session, "coordinator", "S01")
    assert len(store.files()) == before + 1


def test_cut_off_tail_is_found_by_the_checkpoint_after_the_trigger_is_dropped(
    study: Flask,
) -> None:
    assert _cli(study, "audit", "checkpoint").exit_code == 0
    events = _events(study)
    _sql(
        study,
        "DROP TRIGGER audit_events_no_delete",
        f"DELETE FROM audit_events WHERE seq > {events - 50}",
    )
    with get_database(study).session_scope() as session:
        assert verify(session).ok, "the chain alone cannot see a cut-off tail"
    outcome = _cli(study, "audit", "verify")
    assert outcome.exit_code == 1
    assert f"events {events - 49} to {events} are missing" in outcome.output
    assert "checkpoint 0000" in outcome.output  # named


def test_rewritten_and_fully_recomputed_chain_is_found_by_the_checkpoint(study: Flask) -> None:
    assert _cli(study, "audit", "checkpoint").exit_code == 0
    _sql(study, "DROP TRIGGER audit_events_no_update")
    database = get_database(study)
    with database.session_scope() as session:
        rows = list(session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))
        rows[9].reason = "rewritten by an insider"
        prev = rows[8].hash
        for row in rows[9:]:
            row.prev_hash = prev
            row.hash = compute_hash(prev, row)
            prev = row.hash
    with database.session_scope() as session:
        assert verify(session).ok, "a recomputed chain verifies on its own"
    outcome = _cli(study, "audit", "verify")
    assert outcome.exit_code == 1
    assert "the head no longer matches" in outcome.output


def test_an_edited_checkpoint_is_itself_a_finding(study: Flask) -> None:
    store = study.extensions[CHECKPOINTS]
    path = store.files()[0]
    fields = json.loads(path.read_text())
    fields["seq"] = 1
    path.write_text(json.dumps(fields))
    outcome = _cli(study, "audit", "verify")
    assert outcome.exit_code == 1
    assert "signature does not hold" in outcome.output and path.name in outcome.output


def test_restoring_an_older_backup_is_refused_unless_the_loss_is_accepted(
    study: Flask, tmp_path: Path
) -> None:
    backup = tmp_path / "older.db"
    assert _cli(study, "db", "backup", "-o", str(backup)).exit_code == 0
    in_backup = _events(study)
    with study.app_context(), get_database(study).session_scope() as session:
        for _ in range(3):
            make_user(session, "therapist", "S01")
    assert _cli(study, "audit", "checkpoint").exit_code == 0
    current = _events(study)
    get_database(study).engine.dispose()

    refused = _cli(study, "db", "restore", str(backup), "--yes")
    assert refused.exit_code == 1
    assert f"restoring would lose {current - in_backup} events" in refused.output
    assert _events(study) == current  # nothing restored

    accepted = _cli(study, "db", "restore", str(backup), "--yes", "--accept-loss")
    assert accepted.exit_code == 0, accepted.output
    assert f"{current - in_backup} events after the backup were given up" in accepted.output
    store = study.extensions[CHECKPOINTS]
    assert list((store.directory / "superseded").glob("*.json"))
    with get_database(study).session_scope() as session:
        restore = session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
        assert restore is not None and restore.action == "db.restore"
        assert restore.new_values["events_lost"] == current - in_backup
    outcome = _cli(study, "audit", "verify")
    assert outcome.exit_code == 0, outcome.output
    assert (store.directory / LATEST).exists()


def test_production_needs_a_signing_key_and_a_checkpoint_directory(tmp_path: Path) -> None:
    environ = {
        "TRACKER_ENV": "production",
        "TRACKER_SECRET_KEY": "x" * 40,
        "TRACKER_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    }
    with pytest.raises(ConfigError, match="TRACKER_AUDIT_SIGNING_KEY and TRACKER_AUDIT_CHECK"):
        load_settings(environ, tmp_path)
    key = tmp_path / "key.pem"
    assert _cli_keygen(key) == 0
    assert key.stat().st_mode & 0o777 == 0o600
    environ |= {
        "TRACKER_AUDIT_SIGNING_KEY": str(key),
        "TRACKER_AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
    }
    settings = load_settings(environ, tmp_path)
    assert settings.audit_signing_key == str(key)


def _cli_keygen(path: Path) -> int:
    from click.testing import CliRunner

    from tracker.cli import audit_keygen

    return CliRunner().invoke(audit_keygen, ["-o", str(path)]).exit_code
