from __future__ import annotations

import sqlalchemy as sa
from flask import jsonify
from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, build_openapi, parse_query
from tracker.api.schemas import (
    AuditEventOut,
    AuditPage,
    AuditQuery,
    AuditVerification,
    ComplianceReport,
    Health,
    ReportQuery,
)
from tracker.audit import queries as audit_queries
from tracker.audit.services import checkpoint_store, verify
from tracker.db import get_session
from tracker.errors import InvalidInput
from tracker.security import Permission, public, requires


@api_route(
    bp, "/health", "GET", summary="Liveness and database check", tag="system", response=Health
)
@public
def health() -> ResponseReturnValue:
    try:
        get_session().execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        return Health(status="unavailable", database="unreachable").model_dump(), 503
    return Health(status="ok", database="ok").model_dump()


@api_route(bp, "/openapi.json", "GET", summary="This OpenAPI document", tag="system")
@public
def openapi() -> ResponseReturnValue:
    return jsonify(build_openapi())


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
    events = audit_queries.events_after(get_session(), query.after, query.limit)
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
    return AuditVerification(**verify(get_session(), checkpoint_store()).to_dict()).model_dump(
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
    from tracker.reports import compliance
    from tracker.reports.downloads import export_response, record_export
    from tracker.security import authenticated_user

    query = parse_query(ReportQuery)
    if query.check and query.check not in {c["id"] for c in compliance.check_catalogue()}:
        raise InvalidInput(f"Unknown check {query.check!r}.")
    flt = compliance.ReportFilter(
        site=query.site, state=query.state, check=query.check, failures_only=query.failures
    )
    session = get_session()
    user = authenticated_user()
    header = compliance.report_header(session, user.printed_name, flt)
    record_export(query.format, flt, header)
    return export_response(query.format, header, flt, user)
