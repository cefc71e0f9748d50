"""A job as the page and the API show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracker.jobs.kinds import KINDS
from tracker.jobs.models import ExportJob
from tracker.jobs.queries import file_available


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    title: str
    description: str
    parameters: dict[str, Any]
    state: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None
    file_size: int | None
    file_sha256: str | None
    expires_at: datetime | None
    file_available: bool
    expired: bool

    @property
    def waiting(self) -> bool:
        return self.state in ("queued", "running")


def job_view(job: ExportJob) -> JobView:
    kind = KINDS.get(job.kind)
    return JobView(
        id=job.id,
        kind=job.kind,
        title=kind.title if kind else job.kind,
        description=kind.describe(job.parameters) if kind else "",
        parameters=dict(job.parameters),
        state=job.state,
        requested_at=job.requested_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        error=job.error,
        file_size=job.file_size,
        file_sha256=job.file_sha256,
        expires_at=job.expires_at,
        file_available=file_available(job),
        expired=job.state == "done" and job.file_deleted_at is not None,
    )
