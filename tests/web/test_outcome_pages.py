"""Outcome pages (SPEC §10): a blinded rater records the MADRS on the form generated from the
instrument and sees the figures; a missing item is named on the page; the coordinator records
a missed timepoint; the rater reaches no other page about the participant."""

from __future__ import annotations

import html
import random
import re

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import item_codes, make_user
from tracker.audit.services import Actor
from tracker.histories import Team, protocol_history, run_histories
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.outcomes.services import set_raters
from tracker.participants.models import Participant
from tracker.paths import FIXTURES
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol

MADRS = item_codes("madrs")


def _participant(db: Session, team: Team):  # type: ignore[no-untyped-def]
    text = (FIXTURES / "protocols" / "mdma-mdd-v1.toml").read_text(encoding="utf-8")
    activate_protocol(db, Actor.system(), text)
    run_histories([protocol_history(db, team, random.Random(3), "integration")])
    participant = db.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    rater = make_user(db, "rater", "S01")
    set_raters(
        db, Actor("setup", "coordinator", team.coordinator.id), participant, [rater.username]
    )
    db.commit()
    dosing = db.scalars(
        sa.select(TherapySession).where(
            TherapySession.participant_id == participant.id, TherapySession.kind == "dosing"
        )
    ).first()
    return participant, rater, dosing.started_at


def test_a_rater_records_the_madrs_on_the_generated_form(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant, rater, dosed = _participant(db_session, team)
    assert login(client, rater.username).status_code == 302
    page = f"/participants/{participant.id}/outcomes/baseline/madrs"
    form = client.get(page)
    assert form.status_code == 200
    text = form.get_data(as_text=True)
    # Every item, by code and short label (the wording is licensed and not shipped).
    for code in MADRS:
        assert f'name="item_{code}"' in text
    assert "Apparent sadness" in text and "licensed" in text

    token = csrf_token(client, page)
    data = {f"item_{code}": "3" for code in MADRS}
    data.update(
        {"csrf_token": token, "administered_at": (dosed.replace(hour=8)).strftime("%Y-%m-%dT%H:%M")}
    )
    missing = dict(data)
    del missing["item_lassitude"]
    refused = client.post(page, data=missing)
    assert refused.status_code == 422
    assert "madrs item lassitude (Lassitude) is missing." in html.unescape(
        refused.get_data(as_text=True)
    )
    # The other answers stay on the form.
    assert '<option selected value="3">' in refused.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Assessment)) == 0

    # "Show the total" gives the total and band as they will be stored, and stores nothing;
    # with an item missing it names the item instead.
    previewed = client.post(page, data={**data, "action": "preview"})
    assert previewed.status_code == 200
    assert "Total as it will be stored: 30</strong> (moderate)" in previewed.get_data(as_text=True)
    assert '<option selected value="3">' in previewed.get_data(as_text=True)
    incomplete = client.post(page, data={**missing, "action": "preview"})
    assert incomplete.status_code == 422
    assert "lassitude (Lassitude) is missing" in html.unescape(incomplete.get_data(as_text=True))
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Assessment)) == 0

    done = client.post(page, data=data, follow_redirects=True)
    assert done.status_code == 200
    shown = html.unescape(done.get_data(as_text=True))
    assert "madrs at Baseline recorded for" in shown and "total 30 (moderate)" in shown
    assert "<svg" in shown and "MADRS" in shown
    row = db_session.scalars(sa.select(Assessment)).one()
    assert (row.total, row.band, row.recorded_by_id) == (30, "moderate", rater.id)

    # Nothing else about the participant is open to the rater.
    for path in (f"/participants/{participant.id}", "/participants/", "/reports/compliance"):
        assert client.get(path).status_code == 403, path


def test_a_coordinator_cannot_rate_the_madrs_but_records_a_missed_timepoint(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant, _, dosed = _participant(db_session, team)
    assert login(client, team.coordinator.username).status_code == 302
    page = f"/participants/{participant.id}/outcomes/baseline/madrs"
    data = {f"item_{code}": "2" for code in MADRS}
    data.update(
        {
            "csrf_token": csrf_token(client, page),
            "administered_at": dosed.strftime("%Y-%m-%dT%H:%M"),
        }
    )
    refused = client.post(page, data=data)
    assert refused.status_code == 422
    assert "only a blinded rater assigned to the participant records it" in html.unescape(
        refused.get_data(as_text=True)
    )
    outcomes = f"/participants/{participant.id}/outcomes"
    missed = client.post(
        f"{outcomes}/cycle_3/missed",
        data={"csrf_token": csrf_token(client, outcomes), "reason": "Moved abroad."},
        follow_redirects=True,
    )
    assert missed.status_code == 200
    assert "Moved abroad." in missed.get_data(as_text=True)
    assert db_session.scalars(sa.select(MissedTimepoint)).one().timepoint == "cycle_3"
    blank = client.post(
        f"{outcomes}/cycle_2/missed",
        data={"csrf_token": csrf_token(client, outcomes), "reason": ""},
    )
    assert blank.status_code == 400


def test_the_trajectory_is_in_the_report_page_and_the_pdf(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    from io import BytesIO

    from pypdf import PdfReader

    from tracker.outcome_histories import OutcomePlan, outcome_history

    text = (FIXTURES / "protocols" / "mdma-mdd-v1.toml").read_text(encoding="utf-8")
    activate_protocol(db_session, Actor.system(), text)
    rater = make_user(db_session, "rater", "S01")
    run_histories(
        [outcome_history(db_session, team, rater, random.Random(9), OutcomePlan("responder"))]
    )
    db_session.commit()
    participant = db_session.scalars(sa.select(Participant)).one()
    assert login(client, team.investigator.username).status_code == 302
    page = client.get(f"/reports/compliance/participants/{participant.id}")
    assert page.status_code == 200
    shown = html.unescape(page.get_data(as_text=True))
    assert "MADRS (Montgomery-Asberg Depression Rating Scale): total score by timepoint" in shown
    assert "C16" in shown and "C17" in shown
    pdf = client.get("/reports/compliance.pdf")
    assert pdf.status_code == 200, pdf.get_data(as_text=True)[:500]
    words = " ".join(p.extract_text() for p in PdfReader(BytesIO(pdf.data)).pages)
    assert "primary endpoint" in words and "severe (35-60)" in words


def test_the_compliance_report_carries_the_outcomes_section_in_every_format(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    """The page, the JSON, the PDF and the outcomes CSV give the same pooled figures and the
    follow-up retention; the CSV export is on the audit trail; a rater exports nothing."""
    import csv
    import io

    import jsonschema
    from pypdf import PdfReader

    from tracker.audit.models import AuditEvent
    from tracker.outcome_histories import OutcomePlan, outcome_history
    from tracker.reports.exporters import JSON_SCHEMA

    text = (FIXTURES / "protocols" / "mdma-mdd-v1.toml").read_text(encoding="utf-8")
    activate_protocol(db_session, Actor.system(), text)
    rater = make_user(db_session, "rater", "S01")
    run_histories(
        [outcome_history(db_session, team, rater, random.Random(9), OutcomePlan("responder"))]
    )
    db_session.commit()
    participant = db_session.scalars(sa.select(Participant)).one()
    baseline = db_session.scalars(
        sa.select(Assessment.total).where(
            Assessment.participant_id == participant.id,
            Assessment.instrument == "madrs",
            Assessment.timepoint == "baseline",
        )
    ).one()
    endpoint = db_session.scalars(
        sa.select(Assessment.total).where(
            Assessment.participant_id == participant.id,
            Assessment.instrument == "madrs",
            Assessment.timepoint == "primary_endpoint",
        )
    ).one()

    assert login(client, rater.username).status_code == 302
    assert client.get("/reports/outcomes.csv").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert login(client, team.investigator.username).status_code == 302
    page = html.unescape(client.get("/reports/compliance").get_data(as_text=True))
    assert "Follow-up retention" in page and "Durability, 12 months after the last dosing" in page

    report = client.get("/reports/compliance.json").get_json()
    jsonschema.validate(report, JSON_SCHEMA)
    assert report["outcomes"]["blinded"] is True
    rows = {(r["instrument"], r["timepoint"]): r for r in report["outcomes"]["rows"]}
    assert rows[("madrs", "baseline")]["n"] == 1
    assert rows[("madrs", "baseline")]["mean_total"] == baseline
    assert rows[("madrs", "primary_endpoint")]["mean_change"] == endpoint - baseline
    retention = {r["timepoint"]: r for r in report["summary"]["retention"]}
    assert retention["month_12"]["done"] == 1 and retention["month_12"]["retention_rate"] == 1.0

    download = client.get("/reports/outcomes.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    from_csv = {(r["instrument"], r["timepoint"]): r for r in lines}
    assert set(from_csv) == set(rows)
    assert int(from_csv[("madrs", "baseline")]["n"]) == 1
    assert float(from_csv[("madrs", "primary_endpoint")]["mean_change"]) == endpoint - baseline
    # Its provenance: the head of the audit trail it was read at (the export moved it on).
    assert re.fullmatch("[0-9a-f]{64}", lines[0]["audit_head"])
    exported = db_session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.action == "report.export", AuditEvent.entity_type == "outcomes_report"
        )
    ).all()
    assert len(exported) == 1 and exported[0].actor == team.investigator.username

    pdf = client.get("/reports/compliance.pdf")
    words = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Follow-up retention" in words and "Outcomes" in words
