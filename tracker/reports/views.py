"""Compliance report pages and their exports."""

from __future__ import annotations

import io
from collections.abc import Iterator

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.auth.session import current_actor
from tracker.db import get_session, stream_reading, write_unit
from tracker.errors import RuleViolation
from tracker.participants import queries as participant_queries
from tracker.protocol import State
from tracker.protocol.compliance import CHECKS_BY_ID, StudyFacts, run_checks
from tracker.reports import compliance, exporters
from tracker.reports.compliance import ReportFilter, Summary
from tracker.reports.records import load_records
from tracker.security import Permission, authenticated_user, requires
from tracker.sites.services import list_sites
from tracker.study.services import definition_of

bp = Blueprint("reports", __name__, url_prefix="/reports")
PAGE_LIMIT = 200
# The PDF is laid out within the request, about 0.2 s a participant: a larger selection would
# outlast a worker's timeout. The command line has no limit.
WEB_PDF_MAX_PARTICIPANTS = 100


def filter_from_args() -> ReportFilter:
    check = request.args.get("check") or None
    state = request.args.get("state") or None
    if check and check not in CHECKS_BY_ID:
        abort(400, description=f"Unknown check {check!r}.")
    if state and state not in {s.value for s in State}:
        abort(400, description=f"Unknown state {state!r}.")
    return ReportFilter(
        site=request.args.get("site") or None,
        state=state,
        check=check,
        failures_only=request.args.get("failures") in ("1", "on", "true"),
    )


@bp.route("/compliance")
@requires(Permission.REPORTS_VIEW)
def compliance_page() -> ResponseReturnValue:
    flt = filter_from_args()
    session = get_session()
    user = authenticated_user()
    header = compliance.report_header(session, user.printed_name, flt)
    summary = Summary()
    rows = []
    shown = 0
    for row in compliance.participant_results(session, user, flt, header, summary):
        if shown < PAGE_LIMIT:
            rows.append(row)
        shown += 1
    return render_template(
        "reports/compliance.html",
        header=header,
        summary=summary,
        rows=rows,
        total_rows=shown,
        limit=PAGE_LIMIT,
        flt=flt,
        checks=compliance.check_catalogue(),
        chart=exporters.pass_rate_chart(summary),
        deviations=compliance.deviations(session, user, flt),
        safety=compliance.open_safety_items(session, user, flt),
        sites=list_sites(session) if user.site_id is None else [],
        states=[s.value for s in State],
        args=request.args,
    )


@bp.route("/compliance/participants/<int:participant_id>")
@requires(Permission.REPORTS_VIEW)
def compliance_participant(participant_id: int) -> ResponseReturnValue:
    session = get_session()
    user = authenticated_user()
    participant = participant_queries.get_participant(session, user, participant_id)
    flt = ReportFilter()
    header = compliance.report_header(session, user.printed_name, flt)
    (record,) = load_records(session, [participant])
    protocol = definition_of(participant.protocol_version)
    results = run_checks(
        record, protocol, StudyFacts(header.audit_ok, header.audit_problem, header.generated_at)
    )
    return render_template(
        "reports/participant.html",
        header=header,
        participant=participant,
        record=record,
        results=results,
        checks={c.id: c for c in CHECKS_BY_ID.values()},
        charts=exporters.session_charts(record, protocol),
    )


def _export_name(fmt: str, header: compliance.ReportHeader) -> str:
    return f"compliance-{header.generated_at:%Y%m%dT%H%M%SZ}.{fmt}"


@bp.route("/compliance.<any(csv, json, pdf):fmt>")
@requires(Permission.REPORTS_EXPORT)
def compliance_export(fmt: str) -> ResponseReturnValue:
    flt = filter_from_args()
    session = get_session()
    user = authenticated_user()
    if fmt == "pdf":
        in_scope = compliance.participants_in_scope(session, user, flt)
        if in_scope > WEB_PDF_MAX_PARTICIPANTS:
            raise RuleViolation(
                f"A PDF from the browser holds at most {WEB_PDF_MAX_PARTICIPANTS} participants; "
                f"this selection has {in_scope:,}. Narrow it by site or state, export CSV or "
                "JSON (any size), or write the PDF with `tracker report compliance --format "
                "pdf` on the server.",
                [f"{in_scope} participants in scope; at most {WEB_PDF_MAX_PARTICIPANTS}."],
            )
    header = compliance.report_header(session, user.printed_name, flt)
    record_export(fmt, flt, header)
    return export_response(fmt, header, flt, user)


def record_export(fmt: str, flt: ReportFilter, header: compliance.ReportHeader) -> None:
    """The export is on record, in a unit of work of its own, before the first byte leaves."""
    with write_unit(get_session()) as writes:
        compliance.record_export(writes, current_actor(), fmt, flt, header)


def export_response(
    fmt: str, header: compliance.ReportHeader, flt: ReportFilter, user: User
) -> Response:
    """The report as a download. CSV and JSON stream, read in a transaction of the stream's
    own (``stream_reading``); the PDF is laid out within the request."""
    disposition = {"Content-Disposition": f'attachment; filename="{_export_name(fmt, header)}"'}
    user_id = user.id  # the stream reads its user again, in its own session
    if fmt == "csv":

        def csv_lines(session: Session) -> Iterator[str]:
            reader = session.get_one(User, user_id)
            return exporters.csv_report(
                header, compliance.participant_results(session, reader, flt, header)
            )

        return Response(stream_reading(csv_lines), mimetype="text/csv", headers=disposition)
    if fmt == "json":

        def json_text(session: Session) -> Iterator[str]:
            reader = session.get_one(User, user_id)
            summary = Summary()
            rows = compliance.participant_results(session, reader, flt, header, summary)
            return exporters.json_report(
                header, rows, summary, compliance.deviations(session, reader, flt)
            )

        return Response(stream_reading(json_text), mimetype="application/json", headers=disposition)
    session = get_session()
    summary = Summary()
    rows = compliance.participant_results(session, user, flt, header, summary, keep_records=True)
    pdf = io.BytesIO()
    exporters.write_pdf_report(
        header,
        rows,
        summary,
        compliance.deviations(session, user, flt),
        compliance.open_safety_items(session, user, flt),
        pdf,
    )
    return Response(pdf.getvalue(), mimetype="application/pdf", headers=disposition)
