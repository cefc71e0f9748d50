"""The job table's changes, each a short transaction with its audit event: a job is asked
for, claimed by a worker under a lease, renewed while it runs, done or failed, downloaded,
and its file expired. Making the file itself happens outside these (``tracker.jobs.worker``).

Claiming locks the row with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on any
server take different jobs without waiting for one another; on SQLite every unit of work that
writes began with ``BEGIN IMMEDIATE``, so claims run one at a time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.auth.services import actor_for
from tracker.db import utcnow
from tracker.errors import PermissionDenied, RuleViolation
from tracker.jobs.kinds import ExportRecorder, kind_of, may_make
from tracker.jobs.models import ExportJob

WORKER = Actor.system("export-worker")
# A running job's lease; the worker renews it while it works (``renew_lease``), so only a
# worker that stopped lets it run out, and then another takes the job over.
LEASE = timedelta(minutes=2)
# A job whose worker stopped this many times is given up on (its file may be what stops it).
MAX_ATTEMPTS = 3
# Jobs a user may have waiting or running at once: the queue serves everyone.
MAX_OPEN_PER_USER = 5
ERROR_LENGTH = 2000


def request_job(
    db: Session, actor: Actor, user: User, kind_name: str, parameters: Mapping[str, Any]
) -> ExportJob:
    """Queue a file of ``kind_name`` for ``user`` (who may have it made, with these
    parameters), on record as ``export_job.request``."""
    kind = kind_of(kind_name)
    refusal = may_make(user, kind)
    if refusal is not None:
        raise PermissionDenied(f"Not allowed: {refusal}.", [refusal])
    checked = kind.check(parameters)
    waiting = db.scalar(
        sa.select(sa.func.count())
        .select_from(ExportJob)
        .where(ExportJob.requested_by_id == user.id, ExportJob.state.in_(("queued", "running")))
    )
    if (waiting or 0) >= MAX_OPEN_PER_USER:
        raise RuleViolation(
            f"You have {waiting} exports waiting or being made; wait for one to finish before "
            "asking for another.",
            [f"at most {MAX_OPEN_PER_USER} at once"],
        )
    job = ExportJob(
        kind=kind.name,
        parameters=checked,
        requested_by_id=user.id,
        state="queued",
        requested_at=utcnow(),
        attempts=0,
        downloads=0,
    )
    db.add(job)
    db.flush()
    record_event(
        db,
        actor,
        "export_job.request",
        "export_job",
        job.id,
        new={"kind": kind.name, "parameters": checked},
    )
    return job


@dataclass(frozen=True)
class Claimed:
    """What a worker needs to make a claimed job's file (plain values: the claiming session
    is closed before the work starts)."""

    job_id: int
    kind: str
    parameters: dict[str, Any]
    requested_by_id: int
    attempt: int
    worker: str


def _finish_failed(db: Session, job: ExportJob, error: str, now: datetime) -> None:
    job.state = "failed"
    job.error = error[:ERROR_LENGTH]
    job.finished_at = now
    job.lease_until = None
    db.flush()
    _record_finish(db, job, error=job.error)


def _record_finish(db: Session, job: ExportJob, **values: Any) -> None:
    """A job's end on record: its state, attempts and worker, and what the end adds."""
    record_event(
        db,
        WORKER,
        "export_job.finish",
        "export_job",
        job.id,
        new={"state": job.state, "attempts": job.attempts, "worker": job.worker, **values},
    )


def next_claimable(db: Session, now: datetime) -> ExportJob | None:
    """The oldest job a worker may take, locked; a row another worker has locked (claiming
    it this moment) is passed by, never waited for."""
    return db.scalar(
        sa.select(ExportJob)
        .where(
            sa.or_(
                ExportJob.state == "queued",
                sa.and_(ExportJob.state == "running", ExportJob.lease_until < now),
            )
        )
        .order_by(ExportJob.requested_at, ExportJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def claim_next(db: Session, worker: str) -> Claimed | None:
    """Take the oldest job that is queued, or running under a lease that ran out (its worker
    stopped), for ``worker``; None when there is none. The caller commits at once and makes
    the file outside this transaction."""
    while True:
        now = utcnow()
        job = next_claimable(db, now)
        if job is None:
            return None
        taken_over = job.worker if job.state == "running" else None
        if job.attempts >= MAX_ATTEMPTS:
            _finish_failed(
                db,
                job,
                f"Given up after {job.attempts} attempts: each time the worker stopped before "
                "the file was made.",
                now,
            )
            continue
        job.state = "running"
        job.attempts += 1
        job.worker = worker
        job.lease_until = now + LEASE
        job.started_at = now
        job.error = None
        db.flush()
        record_event(
            db,
            WORKER,
            "export_job.start",
            "export_job",
            job.id,
            new={"worker": worker, "attempt": job.attempts, "taken_over_from": taken_over},
        )
        return Claimed(
            job.id, job.kind, dict(job.parameters), job.requested_by_id, job.attempts, worker
        )


def _held(db: Session, job_id: int, worker: str) -> ExportJob | None:
    """The job, locked, if ``worker`` still holds it (None: it was taken over)."""
    job = db.scalar(sa.select(ExportJob).where(ExportJob.id == job_id).with_for_update())
    if job is None or job.state != "running" or job.worker != worker:
        return None
    return job


def renew_lease(db: Session, job_id: int, worker: str) -> bool:
    """Extend a running job's lease; False when ``worker`` no longer holds it."""
    result = db.execute(
        sa.update(ExportJob)
        .where(ExportJob.id == job_id, ExportJob.worker == worker, ExportJob.state == "running")
        .values(lease_until=utcnow() + LEASE)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def complete(
    db: Session,
    job_id: int,
    worker: str,
    *,
    file_name: str,
    file_size: int,
    file_sha256: str,
    keep: timedelta,
    record_export: ExportRecorder,
) -> bool:
    """Mark a job done with its file, and put the export on record with its requester as the
    actor (``report.export`` as a download within a request writes it), in one transaction.
    False, changing nothing, when another worker took the job over meanwhile."""
    job = _held(db, job_id, worker)
    if job is None:
        return False
    requester = db.get_one(User, job.requested_by_id)
    now = utcnow()
    job.state = "done"
    job.finished_at = now
    job.lease_until = None
    job.file_name = file_name
    job.file_size = file_size
    job.file_sha256 = file_sha256
    job.expires_at = now + keep
    db.flush()
    record_export(db, actor_for(requester))
    _record_finish(db, job, size=file_size, sha256=file_sha256, expires_at=job.expires_at)
    return True


def fail(db: Session, job_id: int, worker: str, error: str) -> bool:
    """Mark a job failed with the error (False when another worker took it over)."""
    job = _held(db, job_id, worker)
    if job is None:
        return False
    _finish_failed(db, job, error, utcnow())
    return True


def record_download(db: Session, actor: Actor, job_id: int) -> None:
    """A done job's file fetched by its requester: on record with the file's hash."""
    job = db.get_one(ExportJob, job_id, with_for_update=True)
    job.downloads += 1
    db.flush()
    record_event(
        db,
        actor,
        "export_job.download",
        "export_job",
        job.id,
        new={"kind": job.kind, "sha256": job.file_sha256, "size": job.file_size},
    )


def expire_files(db: Session, exports_dir: Path, limit: int = 100) -> int:
    """Delete the files of done jobs past their expiry (the rows stay, as history); how many.
    A file already gone counts as deleted, so a pass that is rolled back can run again."""
    now = utcnow()
    jobs = list(
        db.scalars(
            sa.select(ExportJob)
            .where(
                ExportJob.state == "done",
                ExportJob.expires_at <= now,
                ExportJob.file_deleted_at.is_(None),
            )
            .order_by(ExportJob.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for job in jobs:
        if job.file_name:
            (exports_dir / job.file_name).unlink(missing_ok=True)
        job.file_deleted_at = now
        db.flush()
        record_event(
            db,
            WORKER,
            "export_job.expire",
            "export_job",
            job.id,
            new={"sha256": job.file_sha256, "expired_at": job.expires_at},
        )
    return len(jobs)
