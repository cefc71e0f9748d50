"""My exports: the background exports a user asked for, their state, and the download of a
made file (the requester's alone); and asking for the compliance report's PDF or a
data-exchange export."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.errors import InvalidInput
from tracker.jobs import queries, services
from tracker.jobs.downloads import download_response
from tracker.jobs.kinds import COMPLIANCE_PDF, EXCHANGE_KINDS, KINDS
from tracker.jobs.presenters import job_view
from tracker.security import Permission, authenticated_user, requires

bp = Blueprint("jobs", __name__, url_prefix="/exports/jobs")
# While a job waits or runs, the page reloads itself (a meta refresh: no script needed).
REFRESH_SECONDS = 5


@bp.route("/")
@requires(Permission.EXPORT_JOBS)
def job_list() -> ResponseReturnValue:
    jobs = [job_view(job) for job in queries.jobs_of(get_db(), authenticated_user())]
    return render_template(
        "jobs/list.html",
        jobs=jobs,
        refresh=REFRESH_SECONDS if any(job.waiting for job in jobs) else None,
    )


@bp.route("/compliance-pdf", methods=["POST"])
@requires(Permission.REPORTS_EXPORT)
def prepare_compliance_pdf() -> ResponseReturnValue:
    """Queue the compliance report's PDF with the filter the report page showed."""
    form = request.form
    parameters = {
        "site": form.get("site") or None,
        "state": form.get("state") or None,
        "check": form.get("check") or None,
        "failures_only": form.get("failures") in ("1", "on", "true"),
    }
    user = authenticated_user()
    job = services.request_job(get_db(), current_actor(), user, COMPLIANCE_PDF.name, parameters)
    flash(
        f"The PDF is being prepared (export {job.id}); it appears here when it is ready.",
        "success",
    )
    return redirect(url_for("jobs.job_list"))


@bp.route("/exchange", methods=["POST"])
@requires(Permission.DATA_EXPORT)
def prepare_exchange() -> ResponseReturnValue:
    """Queue a data-exchange export (ODM, SDTM, FHIR) too large to download at once."""
    kind = request.form.get("kind", "")
    if kind not in {k.name for k in EXCHANGE_KINDS}:
        raise InvalidInput(f"Unknown data-exchange export {kind!r}.", ["kind"])
    user = authenticated_user()
    job = services.request_job(
        get_db(), current_actor(), user, kind, {"site": request.form.get("site") or None}
    )
    flash(
        f"The {KINDS[kind].title} is being prepared (export {job.id}); it appears here when it "
        "is ready.",
        "success",
    )
    return redirect(url_for("jobs.job_list"))


@bp.route("/<int:job_id>/file")
@requires(Permission.EXPORT_JOBS)
def download(job_id: int) -> ResponseReturnValue:
    return download_response(queries.job_of(get_db(), authenticated_user(), job_id))
