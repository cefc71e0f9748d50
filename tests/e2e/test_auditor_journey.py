"""The auditor's journey in a real browser: the compliance report filtered to the failures of
one check, a participant's evidence, the PDF downloaded and read back, the audit trail
filtered to that participant, and the chain verified with its head hash shown."""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.e2e.conftest import ARTIFACTS, LiveServer
from tests.e2e.test_login_journey import sign_in
from tests.factories import make_team
from tracker.audit.models import AuditEvent
from tracker.audit.services import verify
from tracker.db import get_database
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant

Screenshot = Callable[[Page, str], Path]
CHECK_IDS = [f"C{i:02d}" for i in range(1, 15)]
NAME = "test_auditor_proves_and_disproves_compliance"


@dataclass(frozen=True)
class Study:
    compliant: str  # the study id of a participant who completed the protocol by the book
    failing: str  # one whose serious adverse event no investigator has assessed (C10 fails)


def _build_study(live_server: LiveServer) -> Study:
    """Three participants at S01 taken through the protocol by the services: one completed,
    one with a serious adverse event after the first dosing that is left unassessed, one in
    preparation."""
    live_server.create_site("S01")
    with get_database(live_server.app).session_scope() as session:
        team = make_team(session, "S01")
        first = session.scalar(sa.select(sa.func.max(Participant.id))) or 0
        rng = random.Random(55)
        run_histories(
            [
                protocol_history(session, team, rng, "completed"),
                protocol_history(session, team, rng, "completed", serious_event_in_cycle=1),
                protocol_history(session, team, rng, "preparation"),
            ]
        )
        session.flush()
        ids = list(
            session.scalars(
                sa.select(Participant.study_id)
                .where(Participant.id > first)
                .order_by(Participant.id)
            )
        )
    assert len(ids) == 3, ids
    return Study(compliant=ids[0], failing=ids[1])


def _head(live_server: LiveServer) -> tuple[int, str]:
    with get_database(live_server.app).session_scope() as session:
        result = verify(session)
        assert result.ok, result.problem
        return result.events, result.head


def _recorded_export_head(live_server: LiveServer) -> str:
    with get_database(live_server.app).session_scope() as session:
        event = session.scalar(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "report.export")
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
        assert event is not None and event.new_values is not None
        assert event.new_values["format"] == "pdf"
        return str(event.new_values["audit_head"])


def _page_png(pdf: Path, number: int, name: str) -> Path:
    """Page ``number`` (1-based) of ``pdf`` as artifacts/e2e/<name>.png, made by pdftoppm."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.fail("pdftoppm (poppler-utils) is needed to turn the PDF into images")
    prefix = ARTIFACTS / name
    subprocess.run(
        [
            pdftoppm,
            "-png",
            "-r",
            "80",
            "-f",
            str(number),
            "-l",
            str(number),
            "-singlefile",
            str(pdf),
            str(prefix),
        ],
        check=True,
        timeout=120,
    )
    png = prefix.with_suffix(".png")
    assert png.stat().st_size > 10_000, f"{png} looks empty"
    print(f"pdf page {number}: {png}")
    return png


def test_auditor_proves_and_disproves_compliance(
    page: Page, live_server: LiveServer, screenshot: Screenshot
) -> None:
    study = _build_study(live_server)
    auditor = live_server.create_user("auditor", site=None)

    # Sign in; the auditor's menu has the compliance report and the audit trail.
    page.goto("/login")
    sign_in(page, auditor.username)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Compliance").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Protocol compliance")
    expect(page.locator("table").filter(has_text="Participant")).to_contain_text(study.failing)
    screenshot(page, "01-compliance")

    # Only the failures of C10 (adverse events assessed by an investigator).
    filters = page.get_by_role("form", name="Filter the report")
    filters.get_by_label("Check", exact=True).select_option("C10")
    filters.get_by_label("Failures only").check()
    filters.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"check=C10.*failures=1"))
    participants = page.get_by_role("region", name="Participants with failures of C10", exact=True)
    expect(participants).to_contain_text(study.failing)
    expect(participants).not_to_contain_text(study.compliant)
    expect(participants.get_by_role("row").filter(has_text=study.failing)).to_contain_text("C10")
    screenshot(page, "02-failures-of-C10")
    report_url = page.url

    # The participant's evidence: which record, what was expected, what was found.
    participants.get_by_role("link", name=study.failing).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Compliance of {study.failing}")
    c10 = page.get_by_role("row").filter(has_text="C10").first
    expect(c10).to_contain_text("fail")
    evidence = page.get_by_role("table").first
    expect(evidence).to_contain_text("Hypertensive urgency")
    expect(evidence).to_contain_text("relatedness assessed by an investigator")
    expect(evidence).to_contain_text("not assessed")
    screenshot(page, "03-participant-evidence")

    # Back to the filtered report; download the PDF of it.
    page.goto(report_url)
    shown_head = page.locator(".facts code.hash").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", shown_head), shown_head
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    download = download_info.value
    assert re.fullmatch(r"compliance-\d{8}T\d{6}Z\.pdf", download.suggested_filename)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf_path = ARTIFACTS / f"{NAME}-report.pdf"
    download.save_as(pdf_path)
    reader = PdfReader(io.BytesIO(pdf_path.read_bytes()))
    pages = [p.extract_text() for p in reader.pages]
    text = "\n".join(pages)
    words = " ".join(text.split())  # lines wrap where the page is narrow
    flat = "".join(text.split())  # the hash wraps on the title page
    # The head the report states is the one on the page, and the one its export event recorded.
    assert shown_head in flat
    assert _recorded_export_head(live_server) == shown_head
    for check in CHECK_IDS:
        assert check in text, check
    assert study.failing in text and study.compliant not in text  # failures of C10 only
    assert "expected relatedness assessed by an investigator; found not assessed" in words
    assert "check = C10" in words and "failures_only = True" in words
    assert "Checklist signature" in words
    participant_page = next(
        i
        for i, t in enumerate(pages, start=1)
        if f"{study.failing} —" in t.split("\n")[0] or t.lstrip().startswith(study.failing)
    )
    _page_png(pdf_path, 1, f"{NAME}-pdf-page-1")
    _page_png(pdf_path, participant_page, f"{NAME}-pdf-participant-page")
    _page_png(pdf_path, 2, f"{NAME}-pdf-page-2")

    # The audit trail of that participant: the serious event recorded, nobody assessing it.
    nav.get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    trail = page.get_by_role("form", name="Filter events")
    trail.get_by_label("Participant (study id)").fill(study.failing)
    trail.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(f"participant={study.failing}"))
    events = page.locator("table.audit tbody")
    expect(events.get_by_role("row").filter(has_text="adverse_event.record")).to_contain_text(
        "Hypertensive urgency"
    )
    expect(
        events.get_by_role("row").filter(has_text="participant.complete_dosing").first
    ).to_contain_text(f"participant {study.failing}")
    expect(events.get_by_role("row").filter(has_text="session.schedule").first).to_contain_text(
        study.failing
    )
    expect(events).not_to_contain_text(study.compliant)
    expect(events.get_by_role("row").filter(has_text="adverse_event.assess")).to_have_count(0)
    screenshot(page, "04-audit-trail-of-participant")
    # Its history goes further back than a page: the oldest page starts at the enrolment.
    while page.get_by_role("link", name="Older events →").count():
        page.get_by_role("link", name="Older events →").click()
    expect(events.get_by_role("row").last).to_contain_text("participant.enrol")
    expect(page.get_by_role("link", name="← Newest events")).to_be_visible()

    # Verify the chain: the result, the number of events and the head hash.
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail verification")
    expect(page.get_by_role("status")).to_contain_text("The chain verifies")
    events_now, head_now = _head(live_server)
    facts = page.locator("dl.facts")
    expect(facts.locator("code.hash")).to_have_text(head_now)
    expect(facts).to_contain_text(str(events_now))
    screenshot(page, "05-verified")
