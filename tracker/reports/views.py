"""Compliance report pages and their exports."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue

from tracker.audit.services import record_event
from tracker.auth.signin import current_actor
from tracker.db import get_db, write_unit
from tracker.errors import RuleViolation
from tracker.participants import queries as participant_queries
from tracker.protocol import State
from tracker.protocol.compliance import CHECKS_BY_ID, run_checks
from tracker.protocol.compliance_records import StudyFacts
from tracker.randomisation.queries import study_unblinded
from tracker.reports import compliance, exporters
from tracker.reports.compliance import ReportFilter, Summary
from tracker.reports.downloads import export_response, record_export
from tracker.reports.outcomes import outcome_rows
from tracker.reports.records import load_records
from tracker.security import Permission, authenticated_user, requires
from tracker.sites.services import list_sites
from tracker.study.services import definition_of

bp = Blueprint("reports", __name__, url_prefix="/reports")
PAGE_LIMIT = 200
# The PDF is laid out within the request, about 2 s to start and 0.03 to 0.1 s a participant
# (Typst, docs/benchmarks.md): this many take some 10 s, far from a worker's 30 s timeout. A
# larger selection is prepared in the background (``tracker.jobs``: "Prepare the PDF"); the
# command line has no limit.
WEB_PDF_MAX_PARTICIPANTS = 100


def filter_from_args() -> ReportFilter:
    return ReportFilter.checked(
        site=request.args.get("site") or None,
        state=request.args.get("state") or None,
        check=request.args.get("check") or None,
        failures_only=request.args.get("failures") in ("1", "on", "true"),
    )


@bp.route("/compliance")
@requires(Permission.REPORTS_VIEW)
def compliance_page() -> ResponseReturnValue:
    flt = filter_from_args()
    db = get_db()
    user = authenticated_user()
    header = compliance.report_header(db, user.printed_name, flt)
    summary = Summary()
    rows = []
    shown = 0
    for row in compliance.participant_results(db, user, flt, header, summary):
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
        deviations=compliance.deviations(db, user, flt),
        safety=compliance.open_safety_items(db, user, flt),
        outcomes=compliance.outcome_section(db, user, flt),
        blinding=compliance.blinding(db, user, flt),
        accountability=compliance.accountability(db, user, flt),
        sites=list_sites(db) if user.site_id is None else [],
        states=[s.value for s in State],
        args=request.args,
        # The summary counts before the check and failures-only filters, as the cap does.
        pdf_in_request=summary.participants <= WEB_PDF_MAX_PARTICIPANTS,
    )


@bp.route("/compliance/participants/<int:participant_id>")
@requires(Permission.REPORTS_VIEW)
def compliance_participant(participant_id: int) -> ResponseReturnValue:
    db = get_db()
    user = authenticated_user()
    participant = participant_queries.get_participant(db, user, participant_id)
    flt = ReportFilter()
    header = compliance.report_header(db, user.printed_name, flt)
    (record,) = load_records(db, [participant])
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
        charts=exporters.participant_charts(record, protocol),
    )


@bp.route("/compliance.<any(csv, json, pdf):fmt>")
@requires(Permission.REPORTS_EXPORT)
def compliance_export(fmt: str) -> ResponseReturnValue:
    flt = filter_from_args()
    db = get_db()
    user = authenticated_user()
    if fmt == "pdf":
        in_scope = compliance.participants_in_scope(db, user, flt)
        if in_scope > WEB_PDF_MAX_PARTICIPANTS:
            raise RuleViolation(
                f"A PDF from the browser holds at most {WEB_PDF_MAX_PARTICIPANTS} participants; "
                f"this selection has {in_scope:,}. Choose Prepare the PDF on the compliance "
                "report (it is made in the background and listed under My exports), narrow it "
                "by site or state, export CSV or JSON (any size), or write the PDF with "
                "`tracker report compliance --format pdf` on the server.",
                [f"{in_scope} participants in scope; at most {WEB_PDF_MAX_PARTICIPANTS}."],
            )
    header = compliance.report_header(db, user.printed_name, flt)
    record_export(fmt, flt, header)
    return export_response(fmt, header, flt, user)


@bp.route("/outcomes")
@requires(Permission.REPORTS_VIEW)
def outcomes() -> ResponseReturnValue:
    """The outcomes report: pooled figures per protocol, instrument and timepoint (by arm
    once the study is unblinded)."""
    unblinded = study_unblinded(get_db()) is not None
    return render_template(
        "reports/outcomes.html",
        rows=outcome_rows(get_db(), authenticated_user(), unblinded=unblinded),
        unblinded=unblinded,
    )


@bp.route("/outcomes.csv")
@requires(Permission.REPORTS_EXPORT)
def outcomes_csv() -> ResponseReturnValue:
    """The outcomes report as CSV (the compliance report's outcomes section: its site and
    state filters apply), on record as an export like the compliance report's."""
    flt = filter_from_args()
    db = get_db()
    user = authenticated_user()
    header = compliance.report_header(db, user.printed_name, flt, title="Outcomes")
    record_export("csv", flt, header, report="outcomes_report")
    text = "".join(exporters.outcomes_csv(compliance.outcome_section(db, user, flt), header))
    name = f"outcomes-{header.generated_at:%Y%m%dT%H%M%SZ}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/participants/<int:participant_id>/casebook.pdf")
@requires(Permission.PARTICIPANTS_VIEW)
def casebook_pdf(participant_id: int) -> ResponseReturnValue:
    """The participant's casebook as a PDF, an audited export."""
    from tracker.reports.casebook import casebook, write_casebook_pdf

    db = get_db()
    user = authenticated_user()
    participant = participant_queries.get_participant(db, user, participant_id)
    book = casebook(db, participant, user.printed_name)
    data = write_casebook_pdf(book, render_template)
    with write_unit(db) as writes:
        record_event(
            writes,
            current_actor(),
            "report.export",
            "casebook",
            participant.study_id,
            new={"format": "pdf", "audit_head": book.audit_head},
        )
    name = f"casebook-{participant.study_id}-{book.printed_at:%Y%m%dT%H%M%SZ}.pdf"
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
