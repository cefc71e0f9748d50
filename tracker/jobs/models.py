"""Background exports: a job per file asked for from the browser or the API, made by a worker
(`tracker jobs work`) outside any request, so a long export never nears a server's timeout.

A job is queued by its requester, claimed by one worker under a lease (a worker that dies is
taken over when the lease runs out), done with its file's size and SHA-256 or failed with the
error, and its file is deleted at expiry; the row stays, as the history of what was made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, utcnow

STATES = ("queued", "running", "done", "failed")
# The kinds a worker knows how to make (tracker.jobs.kinds holds how); a new kind is a new
# entry there and in this constraint.
KINDS = ("compliance_pdf", "odm", "sdtm_xpt", "sdtm_json", "sdtm_csv", "fhir")


class ExportJob(Base):
    __tablename__ = "export_jobs"
    __table_args__ = (
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state_known"),
        sa.CheckConstraint(
            "kind IN ('compliance_pdf', 'odm', 'sdtm_xpt', 'sdtm_json', 'sdtm_csv', 'fhir')",
            name="kind_known",
        ),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.CheckConstraint(
            "state <> 'running' OR (worker IS NOT NULL AND lease_until IS NOT NULL)",
            name="running_is_leased",
        ),
        sa.CheckConstraint(
            "state <> 'done' OR (file_name IS NOT NULL AND file_size IS NOT NULL "
            "AND file_sha256 IS NOT NULL AND expires_at IS NOT NULL)",
            name="done_has_file",
        ),
        sa.CheckConstraint("state <> 'failed' OR error IS NOT NULL", name="failed_has_error"),
        sa.Index("ix_export_jobs_queue", "state", "requested_at"),
        sa.Index("ix_export_jobs_requester", "requested_by_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    # What to make (for the compliance PDF: the report's filter), as the request gave it.
    parameters: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # The file is made with this user's permissions, site and blinding, and only they fetch it.
    requested_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(sa.String(20), default="queued")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(sa.String(120))
    lease_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    # Relative to the exports folder (TRACKER_EXPORTS_DIR).
    file_name: Mapped[str | None] = mapped_column(sa.String(200))
    file_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    file_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    expires_at: Mapped[datetime | None]
    file_deleted_at: Mapped[datetime | None]
    downloads: Mapped[int] = mapped_column(default=0)
