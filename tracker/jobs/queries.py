"""Reading the job table: a user's own jobs, one of them, the file of a done one."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.errors import NotFound
from tracker.jobs.models import ExportJob

LIST_LIMIT = 50


def jobs_of(db: Session, user: User, limit: int = LIST_LIMIT) -> list[ExportJob]:
    """The user's own jobs, newest first."""
    return list(
        db.scalars(
            sa.select(ExportJob)
            .where(ExportJob.requested_by_id == user.id)
            .order_by(ExportJob.requested_at.desc(), ExportJob.id.desc())
            .limit(limit)
        )
    )


def job_of(db: Session, user: User, job_id: int) -> ExportJob:
    """One of the user's own jobs. Anyone else's is not found, as if it did not exist: a file
    is made with its requester's site and blinding, and is theirs alone."""
    job = db.get(ExportJob, job_id)
    if job is None or job.requested_by_id != user.id:
        raise NotFound(f"No export {job_id} of yours.")
    return job


def file_available(job: ExportJob) -> bool:
    return job.state == "done" and job.file_deleted_at is None and job.file_name is not None


def file_path(exports_dir: Path, job: ExportJob) -> Path:
    assert job.file_name is not None
    return exports_dir / job.file_name
