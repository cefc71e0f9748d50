"""Background exports (tracker.jobs) on SQLite and PostgreSQL: a job is queued, claimed,
made outside any write transaction and recorded done with its file's size and SHA-256, the
export on record with its requester as the actor; a failure keeps its error and leaves no
half-written file; a job whose worker stopped is taken over when the lease runs out, and the
stopped worker cannot then record it; two workers never take the same job; files expire."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import sqlalchemy as sa
from flask import Flask
from pypdf import PdfReader
from sqlalchemy.orm import Session

from tests.conftest import make_test_app
from tests.factories import actor, keep_ledger, make_user
from tests.support.databases import BACKENDS, scratch_database
from tracker import clock, migrate
from tracker.audit.models import AuditEvent
from tracker.audit.services import head, verify
from tracker.auth.models import User
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories
from tracker.jobs import kinds, services, worker
from tracker.jobs.models import ExportJob
from tracker.participants.models import Participant

KEEP = timedelta(hours=72)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "exports"


@pytest.fixture
def auditor(db_session: Session, team) -> User:  # type: ignore[no-untyped-def]
    team, _ = keep_ledger(db_session, team)
    rng = random.Random(21)
    run_histories(
        [
            protocol_history(db_session, team, rng, "completed"),
            protocol_history(db_session, team, rng, "preparation"),
        ]
    )
    user = make_user(db_session, "auditor", None)
    db_session.commit()
    return user


@pytest.fixture
def context(app: Flask) -> Iterator[None]:
    """The worker runs in the app's context (the CLI gives it one): templates, checkpoints."""
    with app.app_context():
        yield


def _queue(db: Session, user: User, **parameters: Any) -> int:
    job = services.request_job(db, actor(user), user, "compliance_pdf", parameters)
    db.commit()
    return job.id


def _actions(db: Session, job_id: int) -> list[str]:
    return list(
        db.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.entity_type == "export_job", AuditEvent.entity_id == str(job_id))
            .order_by(AuditEvent.seq)
        )
    )


def test_a_job_is_queued_claimed_made_and_recorded_done(
    app: Flask, db_session: Session, auditor: User, folder: Path, context: None
) -> None:
    exports = sa.select(sa.func.count()).where(AuditEvent.action == "report.export")
    before = db_session.scalar(exports)
    job_id = _queue(db_session, auditor, state="completed")
    assert db_session.get_one(ExportJob, job_id).state == "queued"

    outcome = worker.run_next(get_database(app), folder, KEEP, "worker-1")
    assert outcome is not None and outcome.state == "done", outcome
    db_session.expire_all()
    job = db_session.get_one(ExportJob, job_id)
    assert (job.state, job.attempts, job.worker) == ("done", 1, "worker-1")
    assert job.started_at and job.finished_at and job.expires_at == job.finished_at + KEEP
    assert job.file_name is not None
    path = folder / job.file_name
    data = path.read_bytes()
    assert job.file_size == len(data) and job.file_sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in folder.iterdir()] == [job.file_name]  # no partial file left
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "S01-0001" in text and "S01-0002" not in text  # the filter: completed only
    # The export is on record as a download in a request records it, by the requester.
    assert db_session.scalar(exports) == before + 1
    export = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "report.export").order_by(AuditEvent.seq)
    ).all()[-1]
    assert export.actor == auditor.username and export.actor_id == auditor.id
    assert export.new_values["format"] == "pdf"
    assert export.new_values["filters"] == {"state": "completed"}
    assert _actions(db_session, job_id) == [
        "export_job.request",
        "export_job.start",
        "export_job.finish",
    ]
    assert verify(db_session).ok
    # Nothing waits any more.
    assert worker.run_next(get_database(app), folder, KEEP, "worker-1") is None


def test_a_failure_keeps_its_error_and_no_half_written_file(
    app: Flask,
    db_session: Session,
    auditor: User,
    folder: Path,
    context: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def half_then_fail(db: Session, user: User, parameters: Any, handle: BinaryIO) -> Any:
        handle.write(b"%PDF-1.7 half a report")
        raise RuntimeError("the layout engine ran out of memory")

    broken = dataclasses.replace(kinds.COMPLIANCE_PDF, write=half_then_fail)
    monkeypatch.setitem(kinds.KINDS, "compliance_pdf", broken)
    exports = sa.select(sa.func.count()).where(AuditEvent.action == "report.export")
    before = db_session.scalar(exports)
    job_id = _queue(db_session, auditor)

    outcome = worker.run_next(get_database(app), folder, KEEP, "worker-1")
    assert outcome is not None and outcome.state == "failed"
    db_session.expire_all()
    job = db_session.get_one(ExportJob, job_id)
    assert job.state == "failed" and job.finished_at is not None
    assert job.error == "RuntimeError: the layout engine ran out of memory"
    assert job.file_name is None and list(folder.iterdir()) == []
    assert db_session.scalar(exports) == before  # nothing left the building
    assert _actions(db_session, job_id)[-1] == "export_job.finish"
    finish = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "export_job.finish")
    ).all()[-1]
    assert finish.new_values["state"] == "failed"


def test_a_disabled_requester_gets_no_file(
    app: Flask, db_session: Session, auditor: User, folder: Path, context: None
) -> None:
    job_id = _queue(db_session, auditor)
    auditor.is_active = False
    db_session.commit()
    outcome = worker.run_next(get_database(app), folder, KEEP, "worker-1")
    assert outcome is not None and outcome.state == "failed"
    db_session.expire_all()
    job = db_session.get_one(ExportJob, job_id)
    assert job.error is not None and "disabled" in job.error
    assert list(folder.iterdir()) == []


def test_a_stopped_workers_job_is_taken_over_when_its_lease_runs_out(
    app: Flask, db_session: Session, auditor: User, folder: Path, context: None
) -> None:
    database = get_database(app)
    job_id = _queue(db_session, auditor)
    with database.session_scope() as db:
        claimed = services.claim_next(db, "stopped-worker")
    assert claimed is not None and claimed.job_id == job_id
    # Within the lease nobody else takes it.
    assert worker.run_next(database, folder, KEEP, "worker-2") is None
    clock.travel(services.LEASE + timedelta(seconds=1))

    outcome = worker.run_next(database, folder, KEEP, "worker-2")
    assert outcome is not None and (outcome.job_id, outcome.state) == (job_id, "done")
    db_session.expire_all()
    job = db_session.get_one(ExportJob, job_id)
    assert (job.state, job.attempts, job.worker) == ("done", 2, "worker-2")
    start = db_session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.action == "export_job.start")
        .order_by(AuditEvent.seq)
    ).all()[-1]
    assert start.new_values == {
        "worker": "worker-2",
        "attempt": 2,
        "taken_over_from": "stopped-worker",
    }
    # The stopped worker, come back, can record nothing.
    with database.session_scope() as db:
        assert not services.renew_lease(db, job_id, "stopped-worker")
        assert not services.fail(db, job_id, "stopped-worker", "late")
    db_session.expire_all()
    assert db_session.get_one(ExportJob, job_id).state == "done"


def test_a_job_whose_worker_keeps_stopping_is_given_up_on(
    app: Flask, db_session: Session, auditor: User, folder: Path, context: None
) -> None:
    database = get_database(app)
    job_id = _queue(db_session, auditor)
    for attempt in range(services.MAX_ATTEMPTS):
        with database.session_scope() as db:
            claimed = services.claim_next(db, f"crashing-{attempt}")
        assert claimed is not None and claimed.attempt == attempt + 1
        clock.travel(services.LEASE + timedelta(seconds=1))
    assert worker.run_next(database, folder, KEEP, "worker") is None
    db_session.expire_all()
    job = db_session.get_one(ExportJob, job_id)
    assert job.state == "failed" and job.error is not None and "Given up after 3" in job.error


def test_files_are_deleted_when_they_expire(
    app: Flask, db_session: Session, auditor: User, folder: Path, context: None
) -> None:
    database = get_database(app)
    job_id = _queue(db_session, auditor)
    assert worker.run_next(database, folder, KEEP, "worker") is not None
    db_session.expire_all()
    name = db_session.get_one(ExportJob, job_id).file_name
    assert name is not None and (folder / name).is_file()
    stale = folder / "job-999-0000.part"
    stale.write_bytes(b"left by a worker that was killed")
    old = time.time() - worker.STALE_PARTIAL.total_seconds() - 60
    import os

    os.utime(stale, (old, old))
    assert worker.expire(database, folder) == 0  # not yet
    clock.travel(KEEP + timedelta(minutes=1))
    assert worker.expire(database, folder) == 1
    assert list(folder.iterdir()) == []
    db_session.expire_all()
    job = db_session.get_one(ExportJob, job_id)
    assert job.state == "done" and job.file_deleted_at is not None  # the row stays, as history
    assert _actions(db_session, job_id)[-1] == "export_job.expire"
    assert worker.expire(database, folder) == 0


def test_a_user_has_a_few_exports_waiting_at_most(db_session: Session, auditor: User) -> None:
    from tracker.errors import InvalidInput, RuleViolation

    for _ in range(services.MAX_OPEN_PER_USER):
        _queue(db_session, auditor)
    with pytest.raises(RuleViolation):
        _queue(db_session, auditor)
    with pytest.raises(InvalidInput):
        services.request_job(db_session, actor(auditor), auditor, "compliance_pdf", {"x": 1})
    with pytest.raises(InvalidInput):
        services.request_job(
            db_session, actor(auditor), auditor, "compliance_pdf", {"check": "C99"}
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_never_take_the_same_job(backend: str, tmp_path: Path) -> None:
    """Two real connections: while the first holds its claim uncommitted, the second takes the
    next job. On PostgreSQL that is SKIP LOCKED: a plain FOR UPDATE would wait for the first
    row, find it running once the first commits, and return nothing (LIMIT 1 is applied
    before the re-check). On SQLite the second begins (BEGIN IMMEDIATE) after the first
    commits."""
    with scratch_database(backend, tmp_path) as url:
        migrate.upgrade(url)
        app = make_test_app(url, str(tmp_path))
        database = get_database(app)
        try:
            with app.app_context():
                with database.session_scope() as db:
                    user = make_user(db, "auditor", None)
                    ids = [
                        services.request_job(db, actor(user), user, "compliance_pdf", {}).id
                        for _ in range(2)
                    ]
                first = database.session_factory()
                claimed_first = services.claim_next(first, "worker-1")
                if backend == "postgresql":
                    # The row the first claim holds is passed by, not waited for.
                    beside = database.session_factory()
                    beside.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                    assert services.next_claimable(beside, clock.now()).id == ids[1]  # type: ignore[union-attr]
                    beside.rollback()
                    beside.close()
                second: dict[str, Any] = {}

                def claim_beside() -> None:
                    with database.session_scope() as db:
                        claimed = services.claim_next(db, "worker-2")
                    second["claimed"] = claimed

                thread = threading.Thread(target=claim_beside)
                thread.start()
                # The second claim passes the locked row by (PostgreSQL) and then waits for
                # the audit chain's append lock, which the first claim's start event holds
                # until it commits (SQLite: for the write lock).
                thread.join(timeout=0.5)
                first.commit()
                first.close()
                thread.join(timeout=15)
                assert not thread.is_alive()
                claimed_second = second["claimed"]
                assert claimed_first is not None and claimed_second is not None
                assert {claimed_first.job_id, claimed_second.job_id} == set(ids)
                with database.session_scope() as db:
                    # Nothing else waits; neither job was counted twice.
                    assert services.claim_next(db, "worker-3") is None
                    rows = db.scalars(sa.select(ExportJob).order_by(ExportJob.id)).all()
                    assert [(r.state, r.attempts) for r in rows] == [("running", 1)] * 2
                    assert {r.worker for r in rows} == {"worker-1", "worker-2"}
        finally:
            database.engine.dispose()


@pytest.mark.parametrize("kind", ["odm", "sdtm_xpt", "fhir"])
def test_a_data_exchange_export_is_made_with_the_requesters_scope_and_on_record(
    app: Flask, db_session: Session, auditor: User, folder: Path, context: None, kind: str
) -> None:
    """What the download would have been: every participant the auditor sees, blinded, the
    export on record as ``data.export`` by the requester."""
    import json
    import xml.etree.ElementTree as ET
    import zipfile

    job = services.request_job(db_session, actor(auditor), auditor, kind, {})
    db_session.commit()
    outcome = worker.run_next(get_database(app), folder, KEEP, "worker-1")
    assert outcome is not None and outcome.state == "done", outcome
    db_session.expire_all()
    made = db_session.get_one(ExportJob, job.id)
    assert made.file_name is not None and made.file_name.endswith(kinds.KINDS[kind].extension)
    data = (folder / made.file_name).read_bytes()
    study_ids = set(db_session.scalars(sa.select(Participant.study_id)))
    if kind == "odm":
        subjects = {
            element.get("SubjectKey")
            for element in ET.fromstring(data).iter(  # noqa: S314 (the tracker's own file)
                "{http://www.cdisc.org/ns/odm/v1.3}SubjectData"
            )
        }
        assert subjects == study_ids
    elif kind == "sdtm_xpt":
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert any(name.endswith("/dm.xpt") for name in names), names
    else:
        bundle = json.loads(data)
        subjects = [
            e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
        ]
        assert len(subjects) == len(study_ids)
    export = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "data.export").order_by(AuditEvent.seq)
    ).all()[-1]
    assert export.actor_id == auditor.id
    assert export.new_values["arms"] is False  # the auditor is blinded
    assert verify(db_session).ok


def test_a_data_exchange_job_is_on_record_against_the_head_it_was_made_from(
    app: Flask,
    db_session: Session,
    auditor: User,
    team,  # type: ignore[no-untyped-def]
    folder: Path,
    context: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The study goes on while the file is made: the export names the head of the snapshot it
    read, not the head when the job is marked done."""
    from tracker.notes.services import add_note

    complete = services.complete

    def while_the_study_went_on(db: Session, *args: Any, **kwargs: Any) -> bool:
        preparing = db.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
        assert preparing is not None
        add_note(db, team.as_therapist(), preparing, "Called in to move the next session.")
        return complete(db, *args, **kwargs)

    monkeypatch.setattr(services, "complete", while_the_study_went_on)
    services.request_job(db_session, actor(auditor), auditor, "odm", {})
    db_session.commit()
    seq = head(db_session)[0]

    outcome = worker.run_next(get_database(app), folder, KEEP, "worker-1")

    assert outcome is not None and outcome.state == "done", outcome
    db_session.expire_all()
    events = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
    ).all()
    by_action = {event.action: event for event in events}
    assert list(by_action) == ["export_job.start", "note.add", "data.export", "export_job.finish"]
    start, export = by_action["export_job.start"], by_action["data.export"]
    assert (export.new_values["audit_events"], export.new_values["audit_head"]) == (
        start.seq,
        start.hash,
    )


def test_a_data_exchange_job_takes_a_site_and_nothing_else(
    db_session: Session, auditor: User
) -> None:
    from tracker.errors import InvalidInput

    with pytest.raises(InvalidInput, match="Unknown export parameter state"):
        services.request_job(db_session, actor(auditor), auditor, "odm", {"state": "completed"})
    job = services.request_job(db_session, actor(auditor), auditor, "odm", {"site": " s01"})
    assert job.parameters == {"site": "S01"}
