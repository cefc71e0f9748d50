"""Writers for the compliance report: CSV and JSON stream row by row; the PDF is laid out by
Typst (the same SVG charts as the pages), a part of the participants at a time."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from markupsafe import Markup

from tracker.dosing.chart import ChartDose, ChartReading, render_vitals_chart
from tracker.outcomes.chart import trajectory_charts
from tracker.protocol.compliance import CHECKS_BY_ID
from tracker.protocol.compliance_records import ParticipantRecord
from tracker.protocol.definition import ProtocolDefinition
from tracker.protocol.dosing import Reading, breaches
from tracker.reports.accountability import LotResult, lot_check_catalogue
from tracker.reports.blinding import BlindingSection
from tracker.reports.compliance import (
    Deviation,
    ParticipantResult,
    ReportHeader,
    SafetyItems,
    Summary,
    check_catalogue,
)
from tracker.reports.outcomes import OutcomeRow
from tracker.spreadsheet import csv_lines

if TYPE_CHECKING:  # pikepdf loads only when a PDF is made
    from tracker.reports.pdf_join import Bookmark

CSV_HEADER = (
    "study_id",
    "site",
    "state",
    "check_id",
    "description",
    "severity",
    "outcome",
    "record",
    "expected",
    "found",
    "note",
    "protocol",
    "generated_at",
    "generated_by",
    "audit_head",
)


def csv_report(header: ReportHeader, rows: Iterable[ParticipantResult]) -> Iterator[str]:
    """One line per check and participant (one per piece of evidence for a failure); the
    report's provenance is repeated on every line so each line stands on its own."""

    def lines() -> Iterator[tuple[Any, ...]]:
        provenance = (
            header.protocol,
            header.generated_at.isoformat(),
            header.generated_by,
            header.audit_head,
        )
        for row in rows:
            for result in row.results:
                check = CHECKS_BY_ID[result.check_id]
                base = (
                    row.study_id,
                    row.site,
                    row.state,
                    check.id,
                    check.description,
                    check.severity.value,
                    result.outcome.value,
                )
                if result.evidence:
                    for evidence in result.evidence:
                        yield (
                            *base,
                            evidence.record,
                            evidence.expected,
                            evidence.found,
                            result.note,
                            *provenance,
                        )
                else:
                    yield (*base, "", "", "", result.note, *provenance)

    return csv_lines(CSV_HEADER, lines())


def _participant_json(row: ParticipantResult) -> dict[str, Any]:
    return {
        "id": row.participant_id,
        "study_id": row.study_id,
        "site": row.site,
        "state": row.state,
        "results": [
            {
                "check": r.check_id,
                "outcome": r.outcome.value,
                "note": r.note,
                "evidence": [e.to_dict() for e in r.evidence],
            }
            for r in row.results
        ],
    }


def json_report(
    header: ReportHeader,
    rows: Iterable[ParticipantResult],
    summary: Summary,
    deviations: Iterable[Deviation] = (),
    outcomes: Iterable[OutcomeRow] = (),
    blinding: BlindingSection | None = None,
    accountability: Iterable[LotResult] = (),
) -> Iterator[str]:
    """A JSON document written piece by piece; the summary, gathered while the participants
    stream, comes last."""
    yield '{"report": ' + json.dumps(header.to_dict(), ensure_ascii=False)
    yield ', "checks": ' + json.dumps(check_catalogue(), ensure_ascii=False)
    yield ', "participants": ['
    for index, row in enumerate(rows):
        yield ("," if index else "") + json.dumps(_participant_json(row), ensure_ascii=False)
    yield '], "deviations": ' + json.dumps(
        [
            {
                "study_id": d.study_id,
                "guard": d.guard_code,
                "description": d.description,
                "reason": d.reason,
                "approved_by": d.approved_by,
                "occurred_at": d.occurred_at.isoformat(),
            }
            for d in deviations
        ],
        ensure_ascii=False,
    )
    blinded = blinding is None or blinding.unblinding is None
    yield ', "outcomes": ' + json.dumps(
        {"blinded": blinded, "rows": [outcome_json(r) for r in outcomes]}, ensure_ascii=False
    )
    if blinding is not None:
        yield ', "blinding": ' + json.dumps(blinding.to_dict(), ensure_ascii=False)
    yield ', "lot_checks": ' + json.dumps(lot_check_catalogue(), ensure_ascii=False)
    yield ', "accountability": ' + json.dumps(
        [lot.to_dict() for lot in accountability], ensure_ascii=False
    )
    yield ', "summary": ' + json.dumps(summary.to_dict(), ensure_ascii=False) + "}"


def outcome_json(row: OutcomeRow) -> dict[str, Any]:
    """A row as JSON; no "arm" key while the study is blinded (pooled rows)."""
    values = dataclasses.asdict(row)
    if values["arm"] is None:
        del values["arm"]
    return values


OUTCOME_CSV_HEADER = tuple(f.name for f in dataclasses.fields(OutcomeRow))


def outcomes_csv(rows: Iterable[OutcomeRow], header: ReportHeader | None = None) -> Iterator[str]:
    """The outcomes report as CSV, a line per protocol, instrument and timepoint (pooled while
    the study is blinded), with the report's provenance on every line when given."""
    provenance: tuple[str, ...] = ()
    names = OUTCOME_CSV_HEADER
    if header is not None:
        names += ("generated_at", "generated_by", "audit_head")
        provenance = (header.generated_at.isoformat(), header.generated_by, header.audit_head)
    return csv_lines(
        names,
        (tuple(getattr(r, n) for n in OUTCOME_CSV_HEADER) + provenance for r in rows),
    )


JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tracker compliance report",
    "type": "object",
    "required": ["report", "checks", "participants", "deviations", "outcomes", "summary"],
    "properties": {
        "report": {
            "type": "object",
            "required": [
                "protocol",
                "generated_at",
                "generated_by",
                "audit_head",
                "audit_events",
                "audit_ok",
            ],
            "properties": {"audit_head": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        },
        "checks": {
            "type": "array",
            "items": {"type": "object", "required": ["id", "description", "severity"]},
        },
        "participants": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["study_id", "site", "state", "results"],
                "properties": {
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["check", "outcome", "evidence"],
                            "properties": {"outcome": {"enum": ["pass", "fail", "not_applicable"]}},
                        },
                    }
                },
            },
        },
        "deviations": {"type": "array"},
        "accountability": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["lot", "label", "balance", "results"],
                "properties": {
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["check", "outcome", "evidence"],
                            "properties": {"outcome": {"enum": ["pass", "fail", "not_applicable"]}},
                        },
                    }
                },
            },
        },
        "outcomes": {
            "type": "object",
            "required": ["blinded", "rows"],
            "properties": {
                "rows": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["protocol", "instrument", "timepoint", "n", "mean_total"],
                    },
                }
            },
        },
        "summary": {
            "type": "object",
            "required": ["participants", "states", "checks", "retention"],
            "properties": {
                "retention": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["protocol", "timepoint", "due", "done", "retention_rate"],
                    },
                }
            },
        },
    },
}


def pass_rate_chart(summary: Summary) -> Markup:
    """A horizontal bar chart of pass rates per check, as SVG (for the page and the PDF)."""
    rows = summary.to_dict()["checks"]
    assert isinstance(rows, list)
    height = 26 * len(rows) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 {height}" width="100%" '
        'role="img" aria-label="Pass rate per check" '
        'font-family="system-ui, sans-serif" font-size="12">'
    ]
    for index, row in enumerate(rows):
        y = 10 + index * 26
        rate = row["pass_rate"]
        width = 0 if rate is None else 460 * rate
        colour = (
            "#1e6b3a"
            if rate is not None and rate >= 0.95
            else "#a11d2b"
            if rate is not None
            else "#8b95a3"
        )
        label = (
            "n/a"
            if rate is None
            else f"{rate * 100:.0f}% ({row['pass']}/{row['pass'] + row['fail']})"
        )
        parts.append(f'<text x="0" y="{y + 14}" fill="#1d2430">{row["id"]}</text>')
        parts.append(f'<rect x="44" y="{y}" width="460" height="18" fill="#eef1f5"/>')
        parts.append(f'<rect x="44" y="{y}" width="{width:.1f}" height="18" fill="{colour}"/>')
        # The figure takes the bar's colour when it falls short, so 0% does not read like n/a.
        ink = "#8b95a3" if rate is None else "#1d2430" if rate >= 0.95 else colour
        parts.append(f'<text x="512" y="{y + 14}" fill="{ink}">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (numbers and fixed ids only)


def session_charts(
    record: ParticipantRecord, protocol: ProtocolDefinition
) -> list[tuple[str, Markup]]:
    """The vital-signs chart of each completed dosing session of a participant."""
    charts = []
    for row in record.completed_dosing:
        readings = [
            ChartReading(
                r.measured_at,
                r.systolic,
                r.diastolic,
                r.heart_rate,
                r.temperature_c,
                tuple(
                    b.sign.value
                    for b in breaches(
                        Reading(
                            r.measured_at, r.systolic, r.diastolic, r.heart_rate, r.temperature_c
                        ),
                        protocol,
                    )
                ),
            )
            for r in sorted(row.readings, key=lambda r: r.measured_at)
        ]
        doses = [ChartDose(d.administered_at, d.amount_mg, d.kind) for d in row.doses]
        assert row.started_at is not None
        svg = render_vitals_chart(
            readings,
            doses,
            protocol,
            start=row.started_at,
            end=row.ended_at,
            title=f"{record.study_id} — {row.label}",
        )
        charts.append((row.label, Markup(svg)))  # noqa: S704 (built from numbers and escaped text)
    return charts


def outcome_charts(
    record: ParticipantRecord, protocol: ProtocolDefinition
) -> list[tuple[str, Markup]]:
    """The score trajectory of each instrument the participant was assessed with (the same
    chart as the outcomes page), primary instrument first."""
    totals = [(a.instrument, a.timepoint, a.total) for a in record.assessments]
    return [
        (instrument.title, Markup(svg))  # noqa: S704 (numbers and escaped text)
        for instrument, svg in trajectory_charts(protocol, totals)
    ]


def participant_charts(
    record: ParticipantRecord, protocol: ProtocolDefinition
) -> list[tuple[str, Markup]]:
    """Every chart of a participant's section: the outcome trajectories, then each dosing
    session's vital signs."""
    return outcome_charts(record, protocol) + session_charts(record, protocol)


PDF_PART_PARTICIPANTS = 50
"""Participants laid out in one Typst document. The report is laid out a part at a time and
the parts are joined as they are written, so memory stays that of one part (its document,
its charts, its PDF) and time grows linearly with the participants."""


def _parts(rows: Iterable[ParticipantResult]) -> Iterator[tuple[list[ParticipantResult], bool]]:
    """The rows in parts of PDF_PART_PARTICIPANTS, each with whether it is the last."""
    part: list[ParticipantResult] = []
    for row in rows:
        if len(part) == PDF_PART_PARTICIPANTS:
            yield part, False
            part = []
        part.append(row)
    if part:
        yield part, True


def write_pdf_report(
    header: ReportHeader,
    rows: Iterable[ParticipantResult],
    summary: Summary,
    deviations: list[Deviation],
    safety: SafetyItems,
    output: BinaryIO,
    outcomes: Sequence[OutcomeRow] = (),
    blinding: BlindingSection | None = None,
    accountability: Sequence[LotResult] = (),
) -> int:
    """The report as one PDF written to ``output``: the front matter (title page with the
    protocol, the author, the time and the audit head; summary; pass-rate chart; safety items;
    deviations), then per participant the results with evidence, the checklist signature, the
    outcome trajectories and the dosing sessions' vital-sign charts, with a bookmark per
    participant. ``summary`` is filled while ``rows`` stream, so the front matter is laid out
    last and put first. Laid out by Typst (``tracker.reports.pdf_layout``), a part of
    PDF_PART_PARTICIPANTS at a time. Returns the number of pages."""
    from tracker.reports import pdf_layout
    from tracker.reports.pdf_join import Bookmark, join_pdfs, pages_and_outline

    with tempfile.TemporaryDirectory(prefix="tracker-report-") as folder:
        parts: list[Path] = []
        detail_bookmarks: list[Bookmark] = []
        detail_pages = detail_participants = 0
        laying_out: pdf_layout.Layout | None = None

        def finish(layout: pdf_layout.Layout) -> None:
            nonlocal detail_pages
            path = layout.wait()
            pages, found = pages_and_outline(path, detail_pages)
            detail_bookmarks.extend(found)
            detail_pages += pages
            parts.append(path)

        try:
            # A part is read and made into a document while the previous one is laid out;
            # its first page's number is known once that one is.
            for part, last in _parts(rows):
                charts = {
                    row.study_id: [
                        (title, str(svg))
                        for title, svg in participant_charts(row.record, row.protocol)
                    ]
                    for row in part
                    if row.record is not None and row.protocol is not None
                }
                document = pdf_layout.participant_detail(header, part, charts, last=last)
                del charts
                if laying_out is not None:
                    finish(laying_out)
                laying_out = pdf_layout.start(
                    document,
                    Path(folder) / f"part-{detail_participants:08d}.pdf",
                    header.generated_at,
                    first_page=detail_pages + 1,
                )
                detail_participants += len(part)
                del document
            if laying_out is not None:
                finish(laying_out)

            laying_out = pdf_layout.start(
                pdf_layout.front_matter(
                    header,
                    summary,
                    deviations,
                    safety,
                    outcomes,
                    blinding,
                    accountability,
                    check_catalogue(),
                    str(pass_rate_chart(summary)),
                    detail_participants=detail_participants,
                    detail_pages=detail_pages,
                ),
                Path(folder) / "front.pdf",
                header.generated_at,
            )
            front_path = laying_out.wait()
        finally:
            if laying_out is not None:
                laying_out.stop()
        front_pages, bookmarks = pages_and_outline(front_path)
        bookmarks += [Bookmark(b.title, b.page + front_pages) for b in detail_bookmarks]
        return join_pdfs(
            [front_path, *parts],
            output,
            title=f"{header.title} report",
            author=header.generated_by,
            bookmarks=bookmarks,
        )
