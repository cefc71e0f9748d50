"""Compliance reports as an auditor gets them: pages, and exports read back by real readers."""

from __future__ import annotations

import csv
import io
import json
import random

import jsonschema
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy.orm import Session

from tests.factories import FACTORY_ACTOR, make_user
from tracker.audit.models import AuditEvent
from tracker.audit.services import verify
from tracker.auth.services import create_api_token
from tracker.histories import protocol_history, run_histories
from tracker.reports.exporters import JSON_SCHEMA


def _study(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import keep_ledger

    team, _ = keep_ledger(db_session, team)  # every dose covered by a dispensing (C19)
    rng = random.Random(21)
    run_histories(
        [
            protocol_history(db_session, team, rng, "completed"),
            protocol_history(db_session, team, rng, "completed", serious_event_in_cycle=1),
            protocol_history(db_session, team, rng, "preparation"),
        ]
    )
    db_session.commit()


def test_report_page_filters_and_participant_evidence(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    page = client.get("/reports/compliance")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "C14" in text and "S01-0001" in text and verify(db_session).head in text
    failing = client.get("/reports/compliance?check=C10&failures=1").get_data(as_text=True)
    assert "S01-0002" in failing and "S01-0001" not in failing
    pid = db_session.scalar(sa.text("SELECT id FROM participants WHERE study_id = 'S01-0002'"))
    detail = client.get(f"/reports/compliance/participants/{pid}").get_data(as_text=True)
    assert "relatedness assessed by an investigator" in detail and "<svg" in detail
    assert client.get("/reports/compliance?check=C99").status_code == 400


def test_csv_export_reads_back_and_is_audited(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    response = client.get("/reports/compliance.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert {r["study_id"] for r in rows} == {"S01-0001", "S01-0002", "S01-0003"}
    assert {r["check_id"] for r in rows} == {f"C{i:02d}" for i in range(1, 20)}
    heads = {r["audit_head"] for r in rows}
    assert len(heads) == 1 and len(heads.pop()) == 64
    c10 = [r for r in rows if r["study_id"] == "S01-0002" and r["check_id"] == "C10"]
    assert (
        c10[0]["outcome"] == "fail"
        and c10[0]["expected"] == "relatedness assessed by an investigator"
    )
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "report.export"))
    assert event is not None and event.new_values["format"] == "csv"


def test_json_export_matches_its_schema(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    document = json.loads(client.get("/reports/compliance.json").get_data(as_text=True))
    jsonschema.validate(document, JSON_SCHEMA)
    assert document["summary"]["participants"] == 3
    assert document["report"]["audit_ok"] is True


def test_pdf_export_holds_the_checks_the_participants_and_the_head(
    app: Flask, client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    signed_in("auditor")
    response = client.get("/reports/compliance.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(response.get_data()))
    text = "\n".join(page.extract_text() for page in reader.pages)
    head = db_session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "report.export")
    ).new_values["audit_head"]
    assert head in text.replace("\n", "")
    for check in ("C01", "C07", "C14"):
        assert check in text
    for study_id in ("S01-0001", "S01-0002", "S01-0003"):
        assert study_id in text
    assert "Checklist signature" in text and len(reader.pages) >= 5


def test_pdf_is_laid_out_in_parts_numbered_as_one(
    client: FlaskClient, db_session: Session, team, signed_in, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Parts of two participants: the detail pages still count 1, 2, 3, … across the joins,
    every participant is in it once, and the last page closes the report."""
    from tracker.reports import exporters

    monkeypatch.setattr(exporters, "PDF_PART_PARTICIPANTS", 2)
    _study(db_session, team)
    signed_in("auditor")
    response = client.get("/reports/compliance.pdf")
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.get_data()))
    texts = [page.extract_text() for page in reader.pages]
    front = [t for t in texts if "front matter, page" in t]
    detail = [t for t in texts if "front matter, page" not in t]
    assert front and texts[: len(front)] == front
    numbers = [int(t.rsplit("page ", 1)[1].split()[0]) for t in detail]
    assert numbers == list(range(1, len(detail) + 1)), numbers
    assert f"participant detail 1\u2013{len(detail)}" in texts[0].replace("\n", " ")
    for study_id in ("S01-0001", "S01-0002", "S01-0003"):
        assert sum(f"{study_id} —" in t for t in detail) >= 1
    assert "End of the report." in detail[-1]
    assert not any("End of the report." in t for t in detail[:-1])


# What an admin may type into a printed name that Typst's markup would otherwise read:
# a hash, a dollar, brackets, a backslash, an at sign, angle brackets, a tilde, stars,
# underscores and quotes.
TYPST_SPECIALS = 'Dr #1 $5 ]x[ \\n @ref <lbl> ~ *b* _i_ "q"'


def _outline(reader: PdfReader) -> list[tuple[str, int]]:
    """The PDF's bookmarks, flat, each with the (0-based) page it opens."""
    found: list[tuple[str, int]] = []

    def walk(items: list) -> None:  # type: ignore[type-arg]
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                found.append((item.title, reader.get_destination_page_number(item)))

    walk(reader.outline)
    return found


def test_pdf_bookmarks_open_each_participant_with_its_checks_charts_and_typed_text(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    """Read back as a reader does: a bookmark per participant opening the page where its
    heading and its check results stand, the front matter's sections bookmarked, the pages
    numbered, the head hash on the title page, the vital-sign charts drawn, and a printed
    name full of Typst's special characters printed as typed."""
    from pypdf.generic import ContentStream

    team.investigator.printed_name = TYPST_SPECIALS  # signs the checklists below
    db_session.flush()
    _study(db_session, team)
    signed_in("auditor")
    response = client.get("/reports/compliance.pdf")
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.get_data()))
    texts = [" ".join(page.extract_text().split()) for page in reader.pages]
    marks = _outline(reader)
    titles = [title for title, _page in marks]
    front = sum("front matter, page" in t for t in texts)

    assert titles[:2] == ["Protocol compliance report", "Summary"]
    for section in ("Outcomes", "Investigational product", "Protocol deviations"):
        assert section in titles and dict(marks)[section] < front
    assert "front matter, page i" in texts[0]
    head = db_session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "report.export")
    ).new_values["audit_head"]
    assert head in texts[0].replace(" ", "")

    participants = [(t, p) for t, p in marks if t.startswith("S01-")]
    assert [t.split(" ")[0] for t, _ in participants] == ["S01-0001", "S01-0002", "S01-0003"]
    for title, page in participants:
        assert title in texts[page] and title not in texts[page - 1], title
        assert f"page {page - front + 1}" in texts[page]
        assert "C01" in texts[page] and "C19" in " ".join(texts[page : page + 2])
    failing = next(page for title, page in participants if title.startswith("S01-0002 "))
    assert "C10 fail" in texts[failing]
    assert "expected relatedness assessed by an investigator" in texts[failing]
    assert f"Checklist signature \u2014 {TYPST_SPECIALS}," in " ".join(texts[failing:])

    charts = [i for i, t in enumerate(texts) if "dosing session #" in t and "Heart rate (bpm)" in t]
    assert charts, "no vital-sign chart"
    page = reader.pages[charts[0]]
    operators = [op for _operands, op in ContentStream(page.get_contents(), reader).operations]
    assert operators.count(b"S") >= 5 and operators.count(b"l") + operators.count(b"c") >= 50


def test_api_report_and_roles(client: FlaskClient, db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    _study(db_session, team)
    auditor = create_api_token(db_session, FACTORY_ACTOR, make_user(db_session, "auditor", None))
    therapist = create_api_token(db_session, FACTORY_ACTOR, team.therapists[0])
    db_session.commit()
    ok = client.get(
        "/api/v1/reports/compliance?format=json", headers={"Authorization": f"Bearer {auditor}"}
    )
    assert (
        ok.status_code == 200
        and json.loads(ok.get_data(as_text=True))["summary"]["participants"] == 3
    )
    as_csv = client.get(
        "/api/v1/reports/compliance?format=csv&failures=true",
        headers={"Authorization": f"Bearer {auditor}"},
    )
    assert {r["study_id"] for r in csv.DictReader(io.StringIO(as_csv.get_data(as_text=True)))} == {
        "S01-0002"
    }
    denied = client.get(
        "/api/v1/reports/compliance", headers={"Authorization": f"Bearer {therapist}"}
    )
    assert denied.status_code == 403


def test_csv_cells_are_neutralised(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from tracker import clock
    from tracker.participants.models import Participant
    from tracker.safety import services as safety_services

    run_histories([protocol_history(db_session, team, random.Random(22), "preparation")])
    participant = db_session.scalar(sa.select(Participant))
    safety_services.record_adverse_event(
        db_session,
        team.as_therapist(),
        participant,
        term='=HYPERLINK("x")',
        grade=1,
        serious=False,
        onset_at=clock.now() - timedelta(hours=1),
    )
    db_session.commit()
    signed_in("auditor")
    body = client.get("/reports/compliance.csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    c10 = next(r for r in rows if r["check_id"] == "C10")
    assert c10["record"].startswith("adverse event") and '=HYPERLINK("x")' in c10["record"]
    audit = client.get("/audit/export.csv").get_data(as_text=True)
    assert "\n=" not in audit and ",=" not in audit


def test_a_browser_pdf_of_too_many_participants_is_refused_and_not_recorded(
    client: FlaskClient, db_session: Session, team, signed_in, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from tracker.reports import views

    monkeypatch.setattr(views, "WEB_PDF_MAX_PARTICIPANTS", 2)
    _study(db_session, team)
    signed_in("auditor")
    exports = sa.select(sa.func.count()).where(AuditEvent.action == "report.export")
    before = db_session.scalar(exports)
    response = client.get("/reports/compliance.pdf")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "at most 2 participants" in text and "has 3" in text
    assert db_session.scalar(exports) == before
    narrowed = client.get("/reports/compliance.pdf?state=preparation")
    assert narrowed.status_code == 200 and narrowed.mimetype == "application/pdf"
