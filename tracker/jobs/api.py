"""Background exports in the JSON API: ask for a file (202, the job), follow it, fetch it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from flask import url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import Strict
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.jobs import queries, services
from tracker.jobs.downloads import download_response
from tracker.jobs.kinds import KINDS
from tracker.jobs.presenters import JobView, job_view
from tracker.protocol import State
from tracker.security import Permission, authenticated_user, requires


class CompliancePdfParameters(Strict):
    """The compliance report's filter, as ``GET /reports/compliance`` takes it; a data-exchange
    export (``odm``, ``sdtm_xpt``, ``sdtm_json``, ``sdtm_csv``, ``fhir``) takes ``site`` only."""

    site: str | None = Field(default=None, max_length=40)
    state: State | None = None
    check: str | None = Field(default=None, max_length=40)
    failures_only: bool = False


class ExportJobRequest(Strict):
    kind: Literal["compliance_pdf", "odm", "sdtm_xpt", "sdtm_json", "sdtm_csv", "fhir"]
    parameters: CompliancePdfParameters = Field(default_factory=CompliancePdfParameters)


# The kinds the API offers are the registry's: a kind added to one and not the other fails
# at import, not at a client.
assert set(get_args(ExportJobRequest.model_fields["kind"].annotation)) == set(KINDS)


class ExportJobOut(BaseModel):
    id: int
    kind: str
    parameters: dict[str, Any]
    state: Literal["queued", "running", "done", "failed"]
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None
    size: int | None
    sha256: str | None
    expires_at: datetime | None
    expired: bool
    download: str | None = Field(description="The file's URL while it can be fetched")


class ExportJobList(BaseModel):
    jobs: list[ExportJobOut]


def _out(job: JobView) -> ExportJobOut:
    return ExportJobOut(
        id=job.id,
        kind=job.kind,
        parameters=job.parameters,
        state=job.state,  # type: ignore[arg-type]
        requested_at=job.requested_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        error=job.error,
        size=job.file_size,
        sha256=job.file_sha256,
        expires_at=job.expires_at,
        expired=job.expired,
        download=url_for("api.export_job_file", job_id=job.id) if job.file_available else None,
    )


@api_route(
    bp,
    "/exports/jobs",
    "POST",
    summary=(
        "Ask for a file made in the background (the compliance report's PDF, a data-exchange "
        "export); 202 with the job"
    ),
    tag="exports",
    body=ExportJobRequest,
    response=ExportJobOut,
    status=202,
)
@requires(Permission.EXPORT_JOBS)
def request_export_job() -> ResponseReturnValue:
    body = parse_body(ExportJobRequest)
    parameters = body.parameters.model_dump(mode="json", exclude_defaults=True)
    job = services.request_job(
        get_db(), current_actor(), authenticated_user(), body.kind, parameters
    )
    return _out(job_view(job)).model_dump(mode="json"), 202


@api_route(
    bp,
    "/exports/jobs",
    "GET",
    summary="Your background exports, newest first",
    tag="exports",
    response=ExportJobList,
)
@requires(Permission.EXPORT_JOBS)
def export_jobs() -> ResponseReturnValue:
    jobs = queries.jobs_of(get_db(), authenticated_user())
    return ExportJobList(jobs=[_out(job_view(job)) for job in jobs]).model_dump(mode="json")


@api_route(
    bp,
    "/exports/jobs/<int:job_id>",
    "GET",
    summary="One of your background exports: its state, times and file",
    tag="exports",
    response=ExportJobOut,
)
@requires(Permission.EXPORT_JOBS)
def export_job(job_id: int) -> ResponseReturnValue:
    job = queries.job_of(get_db(), authenticated_user(), job_id)
    return _out(job_view(job)).model_dump(mode="json")


@api_route(
    bp,
    "/exports/jobs/<int:job_id>/file",
    "GET",
    summary="The file of a done export (yours alone); 409 before it is made, 410 once expired",
    tag="exports",
    response_media_type="application/pdf",
    refusals=("409", "410"),
)
@requires(Permission.EXPORT_JOBS)
def export_job_file(job_id: int) -> ResponseReturnValue:
    return download_response(queries.job_of(get_db(), authenticated_user(), job_id))
