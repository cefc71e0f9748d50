"""The compliance report written out, the same way for a download and for the command line:
the builders' rows (``compliance``) through the writers (``exporters``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.reports import compliance, exporters
from tracker.reports.compliance import ReportFilter, ReportHeader, Summary


def report_text(
    db: Session,
    user: User | None,
    flt: ReportFilter,
    header: ReportHeader,
    fmt: str,
    summary: Summary | None = None,
) -> Iterator[str]:
    """The CSV or JSON report as it streams (``user`` None: the study-wide view)."""
    summary = Summary() if summary is None else summary
    rows = compliance.participant_results(db, user, flt, header, summary)
    if fmt == "csv":
        return exporters.csv_report(header, rows)
    return exporters.json_report(
        header,
        rows,
        summary,
        compliance.deviations(db, user, flt),
        compliance.outcome_section(db, user, flt),
        compliance.blinding(db, user, flt),
        compliance.accountability(db, user, flt),
    )


def write_report_pdf(
    db: Session,
    user: User | None,
    flt: ReportFilter,
    header: ReportHeader,
    summary: Summary,
    handle: BinaryIO,
) -> None:
    rows = compliance.participant_results(db, user, flt, header, summary, keep_records=True)
    exporters.write_pdf_report(
        header,
        rows,
        summary,
        compliance.deviations(db, user, flt),
        compliance.open_safety_items(db, user, flt),
        handle,
        compliance.outcome_section(db, user, flt),
        compliance.blinding(db, user, flt),
        compliance.accountability(db, user, flt),
    )
