"""The study team's day (issue 17): the adverse-event log filters, sorts and exports (an
audited CSV with neutralised cells); the site schedule shows a week by day; the dashboard
flags a session left open and lists the week's sessions."""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta

import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.histories import protocol_history, run_histories
from tracker.participants.models import Participant
from tracker.safety import services as safety
from tracker.sessions import services as session_services
from tracker.sessions.models import TherapySession


def _study(db: Session, team) -> list[Participant]:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    run_histories(
        [
            protocol_history(db, team, rng, "completed", serious_event_in_cycle=1),
            protocol_history(db, team, rng, "integration"),
        ]
    )
    participants = list(db.scalars(sa.select(Participant).order_by(Participant.id)))
    safety.record_adverse_event(
        db,
        team.as_coordinator,
        participants[1],
        term='=HYPERLINK("x")',
        grade=1,
        serious=False,
        onset_at=clock.now() - timedelta(hours=3),
    )
    db.commit()
    return participants


def test_the_adverse_event_log_filters_sorts_and_exports(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    participants = _study(db_session, team)
    signed_in("investigator")
    everything = client.get("/adverse-events/")
    assert everything.status_code == 200
    page = everything.get_data(as_text=True)
    assert participants[0].study_id in page and participants[1].study_id in page
    serious = client.get("/adverse-events/?serious=yes").get_data(as_text=True)
    assert "HYPERLINK" not in serious and participants[0].study_id in serious
    by_grade = client.get("/adverse-events/?sort=grade&order=asc").get_data(as_text=True)
    assert by_grade.index("HYPERLINK") < by_grade.index('badge-bad">serious')
    assert client.get("/adverse-events/?sort=nonsense&min_grade=9").status_code == 200

    exported = client.get("/adverse-events.csv?serious=no")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [r["term"] for r in rows] == ['\'=HYPERLINK("x")']  # neutralised for spreadsheets
    assert rows[0]["serious"] == "no" and rows[0]["study_id"] == participants[1].study_id
    event = db_session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert event.action == "report.export" and event.entity_type == "adverse_event_log"
    assert event.new_values["rows"] == 1


def test_the_schedule_and_the_dashboard_show_the_week_and_what_was_left_open(
    client: FlaskClient, db_session: Session, team, signed_in
) -> None:  # type: ignore[no-untyped-def]
    participants = _study(db_session, team)
    later = clock.now() + timedelta(days=2)
    upcoming = session_services.schedule_session(
        db_session,
        team.as_coordinator,
        participants[1],
        kind="integration",
        scheduled_at=later,
        therapists=[t.username for t in team.therapists],
    )
    left_open = session_services.schedule_session(
        db_session,
        team.as_coordinator,
        participants[1],
        kind="integration",
        scheduled_at=clock.now() - timedelta(days=9),
        therapists=[t.username for t in team.therapists],
    )
    session_services.update_session(
        db_session, team.as_therapist(), left_open, started_at=clock.now() - timedelta(days=9)
    )
    db_session.commit()
    signed_in("coordinator")
    dashboard = client.get("/").get_data(as_text=True)
    assert "Sessions open for more than a day" in dashboard
    assert f"/sessions/{left_open.id}" in dashboard.split("Sessions open for more than a day")[1]
    assert f"/sessions/{upcoming.id}" in dashboard.split("This week's sessions")[1]

    iso = later.isocalendar()
    week = client.get(f"/schedule?week={iso[0]}-W{iso[1]:02d}")
    assert week.status_code == 200
    text = week.get_data(as_text=True)
    assert later.strftime("%a %d %b") in text and f"/sessions/{upcoming.id}" in text
    assert client.get("/schedule?week=2026-W99").status_code == 400
    assert client.get("/schedule?week=soon").status_code == 400
    assert db_session.get(TherapySession, left_open.id).ended_at is None


def test_the_pharmacists_dashboard(client: FlaskClient, db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import login
    from tests.factories import actor, keep_ledger, without_pregnancy_tests
    from tracker.histories import start_cycle
    from tracker.pharmacy import services as pharmacy
    from tracker.pharmacy.models import DrugLot

    team, receipt = keep_ledger(db_session, team, units=40)
    run_histories([protocol_history(db_session, team, random.Random(2), "preparation")])
    participant = db_session.scalar(sa.select(Participant))
    clock.travel(timedelta(days=4))
    without_pregnancy_tests(participant)
    start_cycle(db_session, team, participant)
    dosing = session_services.schedule_session(
        db_session,
        team.as_coordinator,
        participant,
        kind="dosing",
        scheduled_at=clock.now() + timedelta(days=1),
        therapists=[t.username for t in team.therapists],
    )
    lot = db_session.get(DrugLot, receipt.lot_id)
    pharmacy.record_entry(
        db_session,
        actor(team.pharmacist),
        team.pharmacist,
        lot,
        kind="count",
        counted_units=39,
        occurred_at=clock.now(),
    )
    db_session.commit()
    login(client, team.pharmacist.username)
    page = client.get("/").get_data(as_text=True)
    assert f"/sessions/{dosing.id}" in page.split("nothing dispensed")[1]
    assert "difference to explain" in page
    pharmacy.record_entry(
        db_session,
        actor(team.pharmacist),
        team.pharmacist,
        lot,
        kind="dispensing",
        units=9,
        occurred_at=clock.now(),
        session_id=dosing.id,
    )
    db_session.commit()
    after = client.get("/").get_data(as_text=True)
    assert "Every dosing session of the week has its product." in after


def test_the_casebook_prints_every_record_of_a_participant(
    app, client: FlaskClient, db_session: Session, team, signed_in, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from pypdf import PdfReader

    from tracker.notes import services as notes_services

    participants = _study(db_session, team)
    first = participants[0]
    note = notes_services.add_note(db_session, team.as_therapist(), first, "Slept well.")
    notes_services.amend_note(
        db_session, team.as_therapist(), note, "Slept well; no nightmares.", "Added detail."
    )
    db_session.commit()
    signed_in("coordinator")
    assert "casebook.pdf" in client.get(f"/participants/{first.id}").get_data(as_text=True)
    response = client.get(f"/reports/participants/{first.id}/casebook.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    words = " ".join(text.split())
    for expected in (
        f"Casebook of participant {first.study_id}",
        "Consent",
        "Contraindication checklist",
        "Signed by",
        "dosing session",
        "Adverse events",
        "Version 1",
        "Version 2",
        "corrected: Added detail.",
        "Timeline",
        "End of the casebook",
    ):
        assert expected in words, expected
    event = db_session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert event.action == "report.export" and event.entity_type == "casebook"

    output = tmp_path / "casebook.pdf"
    cli = app.test_cli_runner().invoke(
        args=["participants", "casebook", first.study_id, "--pdf", str(output)]
    )
    assert cli.exit_code == 0, cli.output
    assert first.study_id in PdfReader(output).pages[0].extract_text()
    missing = app.test_cli_runner().invoke(
        args=["participants", "casebook", "S99-9999", "--pdf", str(output)]
    )
    assert missing.exit_code == 1 and "No participant S99-9999" in missing.output


def test_a_site_works_in_its_own_time(client: FlaskClient, db_session: Session) -> None:
    """A site in Berlin (UTC+01:00 in December): its pages show and take Berlin time with
    the offset; the record is in UTC; the API stays ISO 8601 with offsets."""
    from datetime import UTC, datetime

    from tests.conftest import csrf_token, login
    from tests.factories import make_team, make_user
    from tracker.audit.services import Actor
    from tracker.sites.services import create_site

    site = create_site(db_session, Actor.system(), "B01", "Berlin site", "Europe/Berlin")
    team = make_team(db_session, site)
    run_histories([protocol_history(db_session, team, random.Random(9), "preparation")])
    participant = db_session.scalar(sa.select(Participant).where(Participant.site_id == site.id))
    db_session.commit()
    login(client, team.coordinator.username)
    page = f"/participants/{participant.id}"
    text = client.get(page).get_data(as_text=True)
    assert (
        "Scheduled for (Europe/Berlin, UTC+01:00)" in text
        or "Scheduled for (Europe/Berlin, UTC+02:00)" in text
    )
    response = client.post(
        f"/participants/{participant.id}/sessions",
        data={
            "csrf_token": csrf_token(client, page),
            "schedule-kind": "preparation",
            "schedule-scheduled_at": "2026-12-10 10:00",
            "schedule-therapists": [t.username for t in team.therapists],
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    row = db_session.scalar(sa.select(TherapySession).order_by(TherapySession.id.desc()).limit(1))
    assert row.scheduled_at == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    shown = client.get(f"/sessions/{row.id}").get_data(as_text=True)
    assert "2026-12-10 10:00 +01:00" in shown
    # A study-wide reader sees the same moment in UTC.
    auditor = make_user(db_session, "auditor", None)
    db_session.commit()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, auditor.username)
    assert "2026-12-10 09:00 UTC" in client.get(f"/sessions/{row.id}").get_data(as_text=True)
