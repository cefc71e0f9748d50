"""The audit trail and the compliance report in the JSON API."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_query
from tracker.api.schemas import (
    AuditEventOut,
    AuditPage,
    AuditQuery,
    AuditVerification,
    ComplianceReport,
    OutcomeReport,
    OutcomeRowOut,
    ReportQuery,
)
from tracker.audit import queries as audit_queries
from tracker.audit.services import checkpoint_store, verify
from tracker.db import get_db
from tracker.randomisation.queries import study_unblinded
from tracker.reports import compliance
from tracker.reports.downloads import export_response, record_export
from tracker.reports.outcomes import outcome_rows
from tracker.security import Permission, authenticated_user, requires


@api_route(
    bp,
    "/audit",
    "GET",
    summary="Audit events in chain order",
    tag="audit",
    query=AuditQuery,
    response=AuditPage,
)
@requires(Permission.AUDIT_VIEW)
def audit_events() -> ResponseReturnValue:
    query = parse_query(AuditQuery)
    events = audit_queries.events_after(get_db(), query.after, query.limit)
    page = AuditPage(
        events=[AuditEventOut.model_validate(e, from_attributes=True) for e in events],
        next_after=events[-1].seq if len(events) == query.limit else None,
    )
    return page.model_dump(mode="json")


@api_route(
    bp,
    "/audit/verify",
    "GET",
    summary="Re-compute the audit hash chain",
    tag="audit",
    response=AuditVerification,
)
@requires(Permission.AUDIT_VERIFY)
def audit_verify() -> ResponseReturnValue:
    return AuditVerification(**verify(get_db(), checkpoint_store()).to_dict()).model_dump(
        mode="json"
    )


@api_route(
    bp,
    "/reports/compliance",
    "GET",
    summary="The compliance report (JSON or CSV), streamed",
    tag="reports",
    query=ReportQuery,
    response=ComplianceReport,
)
@requires(Permission.REPORTS_EXPORT)
def compliance_report() -> ResponseReturnValue:
    query = parse_query(ReportQuery)
    flt = compliance.ReportFilter.checked(
        site=query.site, state=query.state, check=query.check, failures_only=query.failures
    )
    db = get_db()
    user = authenticated_user()
    header = compliance.report_header(db, user.printed_name, flt)
    record_export(query.format, flt, header)
    return export_response(query.format, header, flt, user)


@api_route(
    bp,
    "/reports/outcomes",
    "GET",
    summary="Outcomes per protocol, instrument and timepoint (pooled while blinded)",
    tag="reports",
    response=OutcomeReport,
)
@requires(Permission.REPORTS_VIEW)
def outcomes_report() -> ResponseReturnValue:
    rows = outcome_rows(get_db(), authenticated_user())
    return OutcomeReport(
        blinded=study_unblinded(get_db()) is None,
        rows=[OutcomeRowOut.model_validate(r, from_attributes=True) for r in rows],
    ).model_dump(mode="json")
