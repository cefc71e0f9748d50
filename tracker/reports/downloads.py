"""Compliance exports as downloads, for the pages and the API alike: the export goes on
record first, in a unit of work of its own; CSV and JSON then stream in a read-only
transaction of the stream's own, the PDF is laid out within the request."""

from __future__ import annotations

import io
from collections.abc import Iterator

from flask import Response
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.auth.signin import current_actor
from tracker.db import get_db, stream_reading, write_unit
from tracker.reports import compliance
from tracker.reports.compliance import ReportFilter, Summary
from tracker.reports.writing import report_text, write_report_pdf


def _export_name(fmt: str, header: compliance.ReportHeader) -> str:
    return f"compliance-{header.generated_at:%Y%m%dT%H%M%SZ}.{fmt}"


def record_export(
    fmt: str,
    flt: ReportFilter,
    header: compliance.ReportHeader,
    report: str = "compliance_report",
) -> None:
    """The export is on record, in a unit of work of its own, before the first byte leaves."""
    with write_unit(get_db()) as writes:
        compliance.record_export(writes, current_actor(), fmt, flt, header, report)


def export_response(
    fmt: str, header: compliance.ReportHeader, flt: ReportFilter, user: User
) -> Response:
    """The report as a download. CSV and JSON stream, read in a transaction of the stream's
    own (``stream_reading``); the PDF is laid out within the request."""
    disposition = {"Content-Disposition": f'attachment; filename="{_export_name(fmt, header)}"'}
    user_id = user.id  # the stream reads its user again, in its own session
    if fmt in ("csv", "json"):

        def text(db: Session) -> Iterator[str]:
            return report_text(db, db.get_one(User, user_id), flt, header, fmt)

        mimetype = "text/csv" if fmt == "csv" else "application/json"
        return Response(stream_reading(text), mimetype=mimetype, headers=disposition)
    pdf = io.BytesIO()
    write_report_pdf(get_db(), user, flt, header, Summary(), pdf)
    return Response(pdf.getvalue(), mimetype="application/pdf", headers=disposition)
