"""The compliance PDF laid out by Typst from report objects made by hand: whatever a user
typed prints as typed, and a document Typst cannot lay out fails loudly."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from tracker.protocol.compliance import CHECKS
from tracker.protocol.compliance_records import CheckResult, Evidence, Outcome
from tracker.reports import exporters, pdf_layout
from tracker.reports.compliance import (
    Deviation,
    ParticipantResult,
    ReportHeader,
    SafetyItems,
    Summary,
)

# Typst's markup characters, and a line that would be a Typst code expression.
TYPED = 'a #b $c$ ]d[ \\e @f <g> ~h *i* _j_ "k"'
CODE = '#panic("read as markup")'
HEAD = "0123456789abcdef" * 4


def _header(**filters: object) -> ReportHeader:
    return ReportHeader(
        title="Protocol compliance",
        protocol="MDMA-assisted therapy (mdma-at v1)",
        generated_at=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        generated_by=f"auditor {TYPED}",
        audit_head=HEAD,
        audit_events=12,
        audit_ok=True,
        audit_problem=None,
        filters=dict(filters),
    )


def _row(number: int, study_id: str) -> ParticipantResult:
    results = tuple(
        CheckResult(
            check.id,
            Outcome.FAIL,
            (Evidence(f"record {TYPED}", CODE, TYPED),),
            f"note {TYPED}",
        )
        if check.id == "C10"
        else CheckResult(check.id, Outcome.PASS)
        for check in CHECKS
    )
    return ParticipantResult(number, study_id, "S01", "completed", results)


def _report(rows: list[ParticipantResult], **filters: object) -> PdfReader:
    summary = Summary()
    for row in rows:
        summary.add(row)
    deviation = Deviation(
        rows[0].study_id,
        "G3",
        "Dosing interval",
        f"reason {TYPED} {CODE}",
        f"Dr {TYPED}",
        datetime(2025, 5, 6, 7, 8, tzinfo=UTC),
    )
    output = io.BytesIO()
    pages = exporters.write_pdf_report(
        _header(**filters),
        iter(rows),
        summary,
        [deviation],
        SafetyItems(1, 0, 2, 3),
        output,
    )
    reader = PdfReader(io.BytesIO(output.getvalue()))
    assert pages == len(reader.pages)
    return reader


def _words(reader: PdfReader) -> str:
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_typed_text_prints_verbatim_and_is_never_read_as_markup() -> None:
    study_id = "S01-#1]$"
    reader = _report([_row(1, study_id)], site=f"S01 {TYPED}")
    words = _words(reader)
    assert f"{study_id} \u2014 completed (site S01)" in words
    assert f"record {TYPED}: expected {CODE}; found {TYPED}." in words
    assert f"note {TYPED}" in words
    assert f"reason {TYPED} {CODE}" in words and f"Dr {TYPED}" in words
    assert f"site = S01 {TYPED}" in words
    assert "read as markup" not in words.replace(CODE, "")
    assert reader.metadata is not None and reader.metadata.author == f"auditor {TYPED}"
    titles = [item.title for item in reader.outline if not isinstance(item, list)]
    assert f"{study_id} \u2014 completed (site S01)" in titles
    assert HEAD in words.replace(" ", "")


def test_parts_number_their_pages_and_bookmark_every_participant(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(exporters, "PDF_PART_PARTICIPANTS", 2)
    rows = [_row(n, f"S01-{n:04d}") for n in range(1, 6)]
    reader = _report(rows)
    texts = [" ".join(page.extract_text().split()) for page in reader.pages]
    detail = [i for i, t in enumerate(texts) if "front matter, page" not in t]
    assert [f"page {n}" in texts[i] for n, i in enumerate(detail, start=1)] == [True] * len(detail)
    marks = {
        item.title.split(" ")[0]: reader.get_destination_page_number(item)
        for item in reader.outline
        if not isinstance(item, list)
    }
    for row in rows:
        assert f"{row.study_id} \u2014" in texts[marks[row.study_id]]
    assert "End of the report." in texts[-1]


def test_a_document_typst_cannot_lay_out_fails_with_its_message(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.typ"
    broken.write_text("#let report = json(bytes(sys.inputs.document))\n#nonexistent()\n")
    monkeypatch.setattr(pdf_layout, "TEMPLATE", broken)
    layout = pdf_layout.start(
        {"blocks": []}, tmp_path / "part.pdf", datetime(2026, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(RuntimeError, match="unknown variable: nonexistent"):
        layout.wait()
