"""The session and safety pages through the test client: every form's happy path and a
refusal, escaped notes, site isolation, the read-only auditor, the dashboard's due list, and one
participant taken through the whole protocol, three cycles, by page requests alone."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, login
from tests.factories import make_user
from tracker import clock
from tracker.audit.services import Actor
from tracker.dosing.models import VitalSignAlert
from tracker.histories import (
    Team,
    dosing_session,
    protocol_history,
    run_histories,
    start_cycle,
)
from tracker.notes.models import Note
from tracker.participants.models import Participant
from tracker.participants.transitions import apply_transition
from tracker.paths import FIXTURES
from tracker.protocol import load_protocol_file
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol

# --- helpers ----------------------------------------------------------------------------------


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def _minute(moment: datetime | None = None) -> datetime:
    return (moment or clock.now()).replace(second=0, microsecond=0)


def _at(moment: datetime) -> str:
    """How a datetime-local input sends a time (UTC, to the minute)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def _post(client: FlaskClient, page: str, action: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    """GET the page the form is on (for its CSRF token), then POST the form."""
    return client.post(action, data={"csrf_token": csrf_token(client, page), **data})


def _as(app: Flask, username: str) -> FlaskClient:
    """A browser of its own, signed in."""
    browser = app.test_client()
    assert login(browser, username).status_code == 302
    return browser


def _participant_at(db_session: Session, team: Team, stage: str, seed: int = 7) -> Participant:
    run_histories([protocol_history(db_session, team, random.Random(seed), stage, notes=False)])
    participant = db_session.scalar(sa.select(Participant).order_by(Participant.id.desc()))
    assert participant is not None
    db_session.commit()
    return participant


def _in_dosing(db_session: Session, team: Team) -> Participant:
    participant = _participant_at(db_session, team, "preparation")
    clock.travel(timedelta(days=4))
    start_cycle(db_session, team, participant)
    db_session.commit()
    assert participant.state == "dosing"
    return participant


def _started_dosing_session(
    client: FlaskClient, participant: Participant, team: Team
) -> tuple[str, datetime]:
    """Schedule the dosing session and start it now, through the pages."""
    detail = f"/participants/{participant.id}"
    start = _minute()
    response = _post(
        client,
        detail,
        f"/participants/{participant.id}/sessions",
        {
            "schedule-kind": "dosing",
            "schedule-scheduled_at": _at(start),
            "schedule-therapists": [t.username for t in team.therapists],
        },
    )
    assert response.status_code == 302, _text(response)
    page = response.headers["Location"]
    response = _post(
        client,
        page,
        f"{page}/record",
        {
            "record-started_at": _at(start),
            "record-status": "scheduled",
            "record-therapists": [t.username for t in team.therapists],
        },
    )
    assert response.status_code == 302, _text(response)
    return page, start


def _vitals(client: FlaskClient, page: str, moment: datetime, systolic: int = 128):  # type: ignore[no-untyped-def]
    return _post(
        client,
        page,
        f"{page}/vitals",
        {
            "vitals-measured_at": _at(moment),
            "vitals-systolic": systolic,
            "vitals-diastolic": 82,
            "vitals-heart_rate": 84,
            "vitals-temperature_c": "36.8",
        },
    )


def _dose(client: FlaskClient, page: str, moment: datetime, mg: int, kind: str, **extra: str):  # type: ignore[no-untyped-def]
    return _post(
        client,
        page,
        f"{page}/doses",
        {"dose-administered_at": _at(moment), "dose-amount_mg": mg, "dose-kind": kind, **extra},
    )


def _wait(client: FlaskClient, minutes: int) -> None:
    """Time passes at the bedside: the page is looked at every 20 minutes (the login's idle
    timeout is 30)."""
    while minutes > 0:
        step = min(minutes, 20)
        clock.travel(timedelta(minutes=step))
        assert client.get("/").status_code == 200
        minutes -= step


def _version(page: str, transition: str) -> str:
    match = re.search(rf'name="{transition}-expected_version"[^>]*value="(\d+)"', page)
    where = page.find(f'id="transition-{transition}"')
    shown = page[where : where + 1200] if where >= 0 else "(not offered)"
    assert match, f"no {transition} form on the page: {shown}"
    return match.group(1)


def _transition(client: FlaskClient, participant_id: int, name: str) -> None:
    detail = f"/participants/{participant_id}"
    page = _text(client.get(detail))
    response = client.post(
        f"{detail}/transitions/{name}",
        data={
            "csrf_token": csrf_token(client, detail),
            f"{name}-expected_version": _version(page, name),
            f"{name}-reason": "",
        },
    )
    assert response.status_code == 302, (name, _text(response))


# --- scheduling -------------------------------------------------------------------------------


def test_schedule_offers_the_allowed_kind_and_refuses_another(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    login(client, team.coordinator.username)
    detail = f"/participants/{participant.id}"
    page = _text(client.get(detail))
    assert "Schedule a session" in page
    assert '<option selected value="preparation">' in page or 'value="preparation"' in page
    assert 'value="dosing"' not in page

    refused = _post(
        client,
        detail,
        f"{detail}/sessions",
        {"schedule-kind": "dosing", "schedule-scheduled_at": _at(_minute())},
    )
    assert refused.status_code == 422
    assert "cannot be scheduled while" in _text(refused)

    missing_time = _post(client, detail, f"{detail}/sessions", {"schedule-kind": "preparation"})
    assert missing_time.status_code == 400
    assert "Give the date and time (YYYY-MM-DD HH:MM)." in _text(missing_time)

    done = _post(
        client,
        detail,
        f"{detail}/sessions",
        {
            "schedule-kind": "preparation",
            "schedule-scheduled_at": _at(_minute() + timedelta(days=2)),
            "schedule-therapists": [team.therapists[1].username],
        },
    )
    assert done.status_code == 302
    session_page = _text(client.get(done.headers["Location"]))
    assert "Preparation session" in session_page and team.therapists[1].username in session_page
    assert re.search(r">Preparation #\d+<", _text(client.get(detail)))


def test_screening_shows_why_no_session_can_be_scheduled(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "enrolled")
    login(client, team.coordinator.username)
    page = _text(client.get(f"/participants/{participant.id}"))
    assert "No session can be scheduled while" in page
    assert f"/participants/{participant.id}/sessions" not in page


def test_session_record_form_completes_and_refuses_an_end_before_the_start(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    login(client, team.therapists[0].username)
    detail = f"/participants/{participant.id}"
    start = _minute() - timedelta(hours=2)
    scheduled = _post(
        client,
        detail,
        f"{detail}/sessions",
        {"schedule-kind": "preparation", "schedule-scheduled_at": _at(start)},
    )
    page = scheduled.headers["Location"]
    backwards = _post(
        client,
        page,
        f"{page}/record",
        {
            "record-started_at": _at(start),
            "record-ended_at": _at(start - timedelta(minutes=5)),
            "record-status": "completed",
        },
    )
    assert backwards.status_code == 400
    assert "The end must be after the start." in _text(backwards)
    done = _post(
        client,
        page,
        f"{page}/record",
        {
            "record-started_at": _at(start),
            "record-ended_at": _at(start + timedelta(minutes=90)),
            "record-status": "completed",
            "record-therapists": [team.therapists[0].username],
        },
    )
    assert done.status_code == 302, _text(done)
    assert "Session saved (completed)" in _text(client.get(page))


# --- the dosing session page ------------------------------------------------------------------


def test_dosing_session_readings_doses_alerts_chart_and_effects(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _in_dosing(db_session, team)
    login(client, team.therapists[0].username)
    page, _ = _started_dosing_session(client, participant, team)

    clock.travel(timedelta(minutes=5))
    assert _vitals(client, page, _minute()).status_code == 302
    clock.travel(timedelta(minutes=10))
    wrong = _dose(client, page, _minute(), 100, "initial")
    assert wrong.status_code == 422
    assert "100 mg" in _text(wrong) and "dose-refusals" in _text(wrong)
    initial_at = _minute()
    assert _dose(client, page, initial_at, 120, "initial").status_code == 302

    # A reading that breaches: the alert shows, with its acknowledgement form.
    _wait(client, 95)
    breach = _vitals(client, page, _minute(), systolic=165)
    assert breach.status_code == 302
    shown = _text(client.get(page))
    assert "1 open" in shown and "Acknowledge alert" in shown and "Systolic 165" in shown
    assert "Breach justification" not in shown  # a therapist documents no breach

    # The supplemental dose is refused while the latest reading breaches, with the reason.
    clock.travel(timedelta(minutes=5))
    refused = _dose(client, page, _minute(), 60, "supplemental")
    assert refused.status_code == 422
    assert "breach" in _text(refused).lower()

    alert = db_session.scalar(sa.select(VitalSignAlert).order_by(VitalSignAlert.id.desc()))
    assert alert is not None
    action = f"/alerts/{alert.id}/acknowledgement"
    no_note = _post(client, page, action, {f"ack{alert.id}-note": " "})
    assert no_note.status_code == 400 and "Say what was seen and done." in _text(no_note)
    acknowledged = _post(
        client, page, action, {f"ack{alert.id}-note": "Calm; rechecked, trending down."}
    )
    assert acknowledged.status_code == 302
    shown = _text(client.get(page))
    assert "No open alerts." in shown and "Calm; rechecked, trending down." in shown
    # The chart: series, thresholds, the alert circled, the data table next to it.
    assert shown.count('class="series"') == 4
    assert shown.count('class="threshold"') == 4
    assert 'class="alert-marker"' in shown and "Readings (2)" in shown

    both = _post(
        client,
        page,
        f"{page}/effects",
        {"effects-effects": ["euphoria"], "effects-none_observed": "y"},
    )
    assert both.status_code == 400
    assert "cannot be attested together" in _text(both)
    effects = _post(
        client,
        page,
        f"{page}/effects",
        {"effects-effects": ["euphoria", "craving"], "effects-note": "Brief craving at 3 h."},
    )
    assert effects.status_code == 302
    shown = _text(client.get(page))
    assert "Craving for more of the drug" in shown and "Brief craving at 3 h." in shown


def test_the_investigator_documents_a_supplemental_dose_despite_a_breach(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _in_dosing(db_session, team)
    login(client, team.investigator.username)
    page, _ = _started_dosing_session(client, participant, team)
    clock.travel(timedelta(minutes=5))
    _vitals(client, page, _minute())
    clock.travel(timedelta(minutes=5))
    assert _dose(client, page, _minute(), 80, "initial").status_code == 302
    _wait(client, 95)
    _vitals(client, page, _minute(), systolic=166)
    assert "Breach justification (investigator)" in _text(client.get(page))
    given = _dose(
        client,
        page,
        _minute(),
        40,
        "supplemental",
        **{"dose-breach_justification": "Rechecked 150/90 manually; cuff artefact."},
    )
    assert given.status_code == 302, _text(given)
    assert "given despite a breach" in _text(client.get(page))


def test_session_screen_and_notes_are_escaped_and_versioned(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _in_dosing(db_session, team)
    login(client, team.therapists[0].username)
    page, _ = _started_dosing_session(client, participant, team)

    unanswered = _post(client, page, f"{page}/suicidality-screens", {"screen-ideation": "no"})
    assert unanswered.status_code == 400 and "Answer yes or no." in _text(unanswered)
    answers = {f"screen-{k}": "no" for k in ("ideation", "intent", "plan", "behaviour")}
    screened = _post(
        client,
        page,
        f"{page}/suicidality-screens",
        {"screen-screened_at": _at(_minute()), **answers},
    )
    assert screened.status_code == 302
    assert "negative" in _text(client.get(page))

    evil = "<script>alert('x')</script> participant calm"
    assert _post(client, page, f"{page}/notes", {"note-text": evil}).status_code == 302
    shown = _text(client.get(page))
    assert "<script>alert" not in shown
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; participant calm" in shown
    assert _post(client, page, f"{page}/notes", {"note-text": "  "}).status_code == 400

    note = db_session.scalar(sa.select(Note).where(Note.participant_id == participant.id))
    assert note is not None
    action = f"/notes/{note.id}/corrections"
    same = _post(
        client, page, action, {f"amend{note.id}-text": evil, f"amend{note.id}-reason": "typo"}
    )
    assert same.status_code == 400 and "same as the current version" in _text(same)
    corrected = _post(
        client,
        page,
        action,
        {f"amend{note.id}-text": "Participant calm throughout.", f"amend{note.id}-reason": "Typo"},
    )
    assert corrected.status_code == 302
    shown = _text(client.get(page))
    assert "v1" in shown and "v2" in shown and "Correction reason:</strong> Typo" in shown
    assert "&lt;script&gt;" in shown and "Participant calm throughout." in shown
    assert f"/notes/{note.id}/corrections" not in shown  # only the latest is corrected
    # The participant page shows the thread too.
    assert "Participant calm throughout." in _text(client.get(f"/participants/{participant.id}"))


# --- safety on the participant page and the adverse event page ----------------------------------


def test_side_effects_pregnancy_tests_and_participant_notes(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    login(client, team.coordinator.username)
    detail = f"/participants/{participant.id}"
    onset = _minute() - timedelta(hours=3)
    backwards = _post(
        client,
        detail,
        f"{detail}/side-effects",
        {
            "side-term": "Headache",
            "side-severity": "mild",
            "side-onset_at": _at(onset),
            "side-resolved_at": _at(onset - timedelta(hours=1)),
        },
    )
    assert backwards.status_code == 400 and "The resolution cannot be before the onset" in _text(
        backwards
    )
    done = _post(
        client,
        detail,
        f"{detail}/side-effects",
        {"side-term": "Headache", "side-severity": "mild", "side-onset_at": _at(onset)},
    )
    assert done.status_code == 302
    assert "Headache" in _text(client.get(detail))

    future = _post(
        client,
        detail,
        f"{detail}/pregnancy-tests",
        {
            "pregnancy-tested_at": _at(_minute() + timedelta(days=1)),
            "pregnancy-result": "negative",
        },
    )
    assert future.status_code == 400 and "cannot be in the future" in _text(future)
    done = _post(
        client,
        detail,
        f"{detail}/pregnancy-tests",
        {"pregnancy-tested_at": _at(_minute()), "pregnancy-result": "negative"},
    )
    assert done.status_code == 302

    assert _post(client, detail, f"{detail}/notes", {"note-text": "<b>x</b>"}).status_code == 302
    page = _text(client.get(detail))
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_positive_screen_holds_the_participant(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    login(client, team.therapists[0].username)
    detail = f"/participants/{participant.id}"
    answers = {"screen-ideation": "yes", "screen-intent": "yes", "screen-plan": "no"}
    answers["screen-behaviour"] = "no"
    answers["screen-screened_at"] = _at(_minute())
    response = _post(client, detail, f"{detail}/suicidality-screens", answers)
    assert response.status_code == 302, _text(response)
    page = _text(client.get(response.headers["Location"]))
    assert "is on hold" in page, re.findall(r"flash[^<]*<|state-\w+", page)
    assert "state-on_hold" in page and "positive" in page


def test_adverse_events_assessment_follow_up_and_the_dashboard(
    client: FlaskClient, app: Flask, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    login(client, team.therapists[0].username)
    detail = f"/participants/{participant.id}"
    onset = _minute() - timedelta(hours=2)
    no_criteria = _post(
        client,
        detail,
        f"{detail}/adverse-events",
        {"ae-term": "Syncope", "ae-grade": "3", "ae-onset_at": _at(onset), "ae-serious": "y"},
    )
    assert no_criteria.status_code == 400
    assert "needs at least one seriousness criterion" in _text(no_criteria)
    assert participant.state == "preparation"

    serious = _post(
        client,
        detail,
        f"{detail}/adverse-events",
        {
            "ae-term": "Syncope",
            "ae-grade": "3",
            "ae-onset_at": _at(onset),
            "ae-serious": "y",
            "ae-serious_criteria": ["hospitalisation"],
            "ae-description": "Fainted <at home>",
        },
    )
    assert serious.status_code == 302
    event_page = serious.headers["Location"]
    shown = _text(client.get(event_page))
    assert "report by" in shown and "awaiting investigator assessment" in shown
    assert "Fainted &lt;at home&gt;" in shown
    assert "Investigator&#39;s assessment" not in shown  # the therapist does not assess
    page = _text(client.get(detail))
    assert "state-on_hold" in page and "report by" in page and "hospitalisation" in page

    # The dashboard: the report deadline and the assessment waiting.
    dashboard = _text(client.get("/"))
    assert "Due or overdue" in dashboard and "Syncope" in dashboard
    assert "My participants" in dashboard and participant.study_id in dashboard

    event = db_session.scalar(sa.select(AdverseEvent).order_by(AdverseEvent.id.desc()))
    assert event is not None
    investigator = _as(app, team.investigator.username)
    missing = _post(investigator, event_page, f"{event_page}/assessment", {"assess-expected": "no"})
    assert missing.status_code == 400 and "Choose the relatedness." in _text(missing)
    assessed = _post(
        investigator,
        event_page,
        f"{event_page}/assessment",
        {"assess-relatedness": "possible", "assess-expected": "no", "assess-note": "Vasovagal?"},
    )
    assert assessed.status_code == 302
    early = _post(
        investigator,
        event_page,
        f"{event_page}/follow-up",
        {"follow-outcome": "ongoing", "follow-reported_at": _at(onset - timedelta(hours=1))},
    )
    assert early.status_code == 400 and "The report cannot be before" in _text(early)
    clock.travel(timedelta(minutes=2))
    reported = _post(
        investigator,
        event_page,
        f"{event_page}/follow-up",
        {
            "follow-outcome": "recovered",
            "follow-resolved_at": _at(_minute()),
            "follow-reported_at": _at(_minute()),
        },
    )
    assert reported.status_code == 302
    shown = _text(investigator.get(event_page))
    assert "Possible, unexpected" in shown and "reported " in shown and "Recovered" in shown
    assert "report by" not in _text(investigator.get(detail))


def test_dashboard_lists_sessions_today_alerts_and_integration_due(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    # One participant just out of a dosing session: the first integration session is due.
    dosed = _participant_at(db_session, team, "preparation", seed=8)
    clock.travel(timedelta(days=4))
    start_cycle(db_session, team, dosed)
    clock.travel(timedelta(days=1))
    dosing_session(db_session, team, dosed, random.Random(8))
    apply_transition(
        db_session, team.as_therapist(), dosed, "complete_dosing", expected_version=dosed.version
    )
    db_session.commit()
    assert dosed.state == "integration"
    # Another in dosing today, with an open alert.
    participant = _in_dosing(db_session, team)
    login(client, team.therapists[0].username)
    page, _ = _started_dosing_session(client, participant, team)
    clock.travel(timedelta(minutes=5))
    _vitals(client, page, _minute(), systolic=170)
    dashboard = _text(client.get("/"))
    assert "Today's sessions" in dashboard and "My participants" in dashboard
    assert f"Dosing session</a> of {participant.study_id}" in dashboard
    assert "Systolic 170" in dashboard
    due = dashboard[dashboard.index("First integration session") :]
    assert dosed.study_id in due[: due.index("Serious adverse event reports")]


# --- access -------------------------------------------------------------------------------------


def test_another_sites_session_and_alert_are_not_found(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:
    participant = _in_dosing(db_session, team)
    own = login(client, team.therapists[0].username)
    assert own.status_code == 302
    page, _ = _started_dosing_session(client, participant, team)
    clock.travel(timedelta(minutes=5))
    _vitals(client, page, _minute(), systolic=170)
    alert = db_session.scalar(sa.select(VitalSignAlert).order_by(VitalSignAlert.id.desc()))
    assert alert is not None
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    signed_in("coordinator", site="S02")
    assert client.get(page).status_code == 404
    token = csrf_token(client, "/")
    posted = client.post(
        f"/alerts/{alert.id}/acknowledgement",
        data={"csrf_token": token, f"ack{alert.id}-note": "x"},
    )
    assert posted.status_code == 404
    assert client.post(f"{page}/vitals", data={"csrf_token": token}).status_code == 404


def test_an_unassigned_therapist_cannot_see_the_session(
    client: FlaskClient, db_session: Session, team: Team, signed_in
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    row = db_session.scalar(
        sa.select(TherapySession).where(TherapySession.participant_id == participant.id)
    )
    assert row is not None
    signed_in("therapist", site="S01")
    assert client.get(f"/sessions/{row.id}").status_code == 404


def test_the_auditor_reads_without_forms_and_is_refused_every_post(
    client: FlaskClient, app: Flask, db_session: Session, team: Team, signed_in
) -> None:
    participant = _in_dosing(db_session, team)
    therapist = _as(app, team.therapists[0].username)
    page, _ = _started_dosing_session(therapist, participant, team)
    clock.travel(timedelta(minutes=5))
    _vitals(therapist, page, _minute(), systolic=170)
    alert = db_session.scalar(sa.select(VitalSignAlert).order_by(VitalSignAlert.id.desc()))
    assert alert is not None
    _post(
        therapist,
        f"/participants/{participant.id}",
        f"/participants/{participant.id}/adverse-events",
        {"ae-term": "Nausea", "ae-grade": "1", "ae-onset_at": _at(_minute())},
    )
    event = db_session.scalar(sa.select(AdverseEvent).order_by(AdverseEvent.id.desc()))
    assert event is not None

    signed_in("auditor")
    pages = [page, f"/participants/{participant.id}", f"/adverse-events/{event.id}"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        forms = re.findall(r'<form method="post" action="([^"]+)"', _text(response))
        assert forms == ["/logout"], (path, forms)
    assert 'class="threshold"' in _text(client.get(page))
    token = csrf_token(client, "/")
    pid = participant.id
    for action in (
        f"/participants/{pid}/sessions",
        f"/participants/{pid}/side-effects",
        f"/participants/{pid}/adverse-events",
        f"/participants/{pid}/suicidality-screens",
        f"/participants/{pid}/pregnancy-tests",
        f"/participants/{pid}/notes",
        f"{page}/record",
        f"{page}/vitals",
        f"{page}/doses",
        f"{page}/effects",
        f"{page}/suicidality-screens",
        f"{page}/notes",
        f"/alerts/{alert.id}/acknowledgement",
        f"/adverse-events/{event.id}/assessment",
        f"/adverse-events/{event.id}/follow-up",
        "/notes/1/corrections",
    ):
        assert client.post(action, data={"csrf_token": token}).status_code == 403, action


def test_a_coordinator_cannot_assess_an_adverse_event(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    participant = _participant_at(db_session, team, "preparation")
    login(client, team.coordinator.username)
    detail = f"/participants/{participant.id}"
    response = _post(
        client,
        detail,
        f"{detail}/adverse-events",
        {"ae-term": "Nausea", "ae-grade": "1", "ae-onset_at": _at(_minute())},
    )
    page = response.headers["Location"]
    assert "Investigator&#39;s assessment" not in _text(client.get(page))
    token = csrf_token(client, page)
    assessed = client.post(
        f"{page}/assessment",
        data={"csrf_token": token, "assess-relatedness": "possible", "assess-expected": "no"},
    )
    assert assessed.status_code == 403


# --- the whole protocol, by page requests alone --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [None, "mdma-mdd-v1.toml"])
def test_the_whole_protocol_through_the_pages(
    app: Flask, db_session: Session, team: Team, protocol: str | None
) -> None:
    """Under the depression protocol, every outcome assessment is entered on its page too (the
    clinician-rated ones by the blinded rater), and every follow-up timepoint to completion."""
    definition = None
    if protocol is not None:
        text = (FIXTURES / "protocols" / protocol).read_text(encoding="utf-8")
        activate_protocol(db_session, Actor.system(), text)
        definition = load_protocol_file(FIXTURES / "protocols" / protocol)
    rater = make_user(db_session, "rater", "S01")
    db_session.commit()
    therapists = [t.username for t in team.therapists]

    def assess(timepoint: str) -> None:
        assert definition is not None
        for code in definition.timepoint(timepoint).instruments:
            instrument = definition.instrument(code)
            who = rater.username if instrument.kind == "clinician" else team.coordinator.username
            value = 0 if code == "cssrs" else (3 if timepoint == "baseline" else 1)
            form = f"/participants/{pid}/outcomes/{timepoint}/{code}"
            done = _post(
                _as(app, who),
                form,
                form,
                {
                    "administered_at": _at(_minute() - timedelta(hours=1)),
                    **{f"item_{i.code}": str(min(value, i.maximum)) for i in instrument.items},
                },
            )
            assert done.status_code == 302, (timepoint, code, _text(done))

    def coordinator() -> FlaskClient:
        return _as(app, team.coordinator.username)

    # Enrolment, checklist, signature, consent, a screening screen, eligibility confirmed.
    staff = coordinator()
    enrolled = _post(
        staff,
        "/participants/new",
        "/participants/new",
        {"site": "S01", "sex": "female", "year_of_birth": "1985", "therapists": therapists[0]},
    )
    assert enrolled.status_code == 302, _text(enrolled)
    detail = enrolled.headers["Location"]
    pid = int(detail.rsplit("/", 1)[1])
    checklist_page = _text(staff.get(f"{detail}/checklist"))
    codes = sorted(set(re.findall(r'name="answer_(\w+)"', checklist_page)))
    assert len(codes) > 10
    saved = _post(
        staff, f"{detail}/checklist", f"{detail}/checklist", {f"answer_{c}": "no" for c in codes}
    )
    assert saved.status_code == 302
    investigator = _as(app, team.investigator.username)
    signed = _post(
        investigator,
        f"{detail}/review",
        f"{detail}/review/signature",
        {
            "signature-password": team.investigator_password,
            "signature-meaning": "I confirm that I have reviewed this checklist and its outcome",
        },
    )
    assert signed.status_code == 302, _text(signed)
    consent = _post(
        staff,
        f"{detail}/consent",
        f"{detail}/consent",
        {"document_version": "ICF v2.1", "signed_on": clock.now().date().isoformat()},
    )
    assert consent.status_code == 302
    negative = {f"screen-{k}": "no" for k in ("ideation", "intent", "plan", "behaviour")}
    screened = _post(
        staff,
        detail,
        f"{detail}/suicidality-screens",
        {"screen-screened_at": _at(_minute()), **negative},
    )
    assert screened.status_code == 302
    _transition(staff, pid, "confirm_eligibility")
    if protocol is not None:
        outcomes = f"/participants/{pid}/outcomes"
        assigned = _post(staff, outcomes, f"/participants/{pid}/raters", {"raters": rater.username})
        assert assigned.status_code == 302, _text(assigned)

    def simple_session(kind: str) -> None:
        """Scheduled by the coordinator, recorded by the therapist: it took place just now."""
        staff = coordinator()
        start = _minute() - timedelta(hours=2)
        scheduled = _post(
            staff,
            detail,
            f"{detail}/sessions",
            {
                "schedule-kind": kind,
                "schedule-scheduled_at": _at(start),
                "schedule-therapists": therapists,
            },
        )
        assert scheduled.status_code == 302, (kind, _text(scheduled))
        page = scheduled.headers["Location"]
        therapist = _as(app, therapists[0])
        done = _post(
            therapist,
            page,
            f"{page}/record",
            {
                "record-started_at": _at(start),
                "record-ended_at": _at(start + timedelta(minutes=90)),
                "record-status": "completed",
                "record-therapists": therapists,
            },
        )
        assert done.status_code == 302, (kind, _text(done))
        if kind == "integration":
            assert (
                _post(
                    therapist,
                    page,
                    f"{page}/suicidality-screens",
                    {"screen-screened_at": _at(_minute()), **negative},
                ).status_code
                == 302
            )

    for _ in range(3):
        clock.travel(timedelta(days=7))
        simple_session("preparation")

    if protocol is not None:
        assess("baseline")
    for cycle in (1, 2, 3):
        clock.travel(timedelta(days=4 if cycle == 1 else (2 if protocol else 10)))
        staff = coordinator()
        tested = _post(
            staff,
            detail,
            f"{detail}/pregnancy-tests",
            {"pregnancy-tested_at": _at(_minute()), "pregnancy-result": "negative"},
        )
        assert tested.status_code == 302
        _transition(staff, pid, "start_dosing")
        clock.travel(timedelta(hours=16))

        # The dosing day, entered as it happens: the therapist stays at the bedside.
        therapist = _as(app, therapists[0])
        start = _minute()
        scheduled = _post(
            therapist,
            detail,
            f"{detail}/sessions",
            {
                "schedule-kind": "dosing",
                "schedule-scheduled_at": _at(start),
                "schedule-therapists": therapists,
            },
        )
        assert scheduled.status_code == 302, _text(scheduled)
        page = scheduled.headers["Location"]
        record = {"record-started_at": _at(start), "record-therapists": therapists}
        started = _post(therapist, page, f"{page}/record", {**record, "record-status": "scheduled"})
        assert started.status_code == 302
        clock.travel(timedelta(minutes=5))
        assert _vitals(therapist, page, _minute()).status_code == 302
        clock.travel(timedelta(minutes=10))
        assert _dose(therapist, page, _minute(), 120, "initial").status_code == 302
        while _minute() - start < timedelta(hours=8, minutes=30):
            clock.travel(timedelta(minutes=25))
            assert _vitals(therapist, page, _minute()).status_code == 302
        effects = _post(
            therapist,
            page,
            f"{page}/effects",
            {"effects-effects": ["emotional_openness", "euphoria"], "effects-note": "Calm."},
        )
        assert effects.status_code == 302
        assert (
            _post(
                therapist,
                page,
                f"{page}/suicidality-screens",
                {"screen-screened_at": _at(_minute()), **negative},
            ).status_code
            == 302
        )
        clock.travel(timedelta(minutes=5))
        ended = _post(
            therapist,
            page,
            f"{page}/record",
            {
                **record,
                "record-ended_at": _at(_minute()),
                "record-status": "completed",
                "record-overnight_stay": "yes",
            },
        )
        assert ended.status_code == 302, _text(ended)
        _transition(therapist, pid, "complete_dosing")

        for gap in (timedelta(hours=14), timedelta(days=6), timedelta(days=7)):
            clock.travel(gap)
            simple_session("integration")
        if protocol is not None:
            # Inside the cycle's window (21 days after its dosing; 14 after the last one).
            clock.travel(timedelta(days=2 if cycle == 3 else 8))
            assess(f"cycle_{cycle}")

    staff = coordinator()
    _transition(staff, pid, "complete_protocol")
    if protocol is not None:
        last_dosing = _minute() - timedelta(days=16)
        for code, days in (("primary_endpoint", 56), ("month_6", 182), ("month_12", 365)):
            clock.advance_to(last_dosing + timedelta(days=days))
            assess(code)
        outcomes_page = _text(coordinator().get(f"/participants/{pid}/outcomes"))
        assert outcomes_page.count(">done</span>") == len(definition.timepoints)  # type: ignore[union-attr]
        assert "<svg" in outcomes_page
        staff = coordinator()
        _transition(staff, pid, "complete_follow_up")
    page = _text(staff.get(detail))
    assert 'state state-completed">completed' in page
    participant = db_session.get(Participant, pid)
    db_session.refresh(participant)
    assert participant is not None and (participant.state, participant.cycle) == ("completed", 3)
    kinds = db_session.execute(
        sa.select(TherapySession.kind, sa.func.count())
        .where(TherapySession.participant_id == pid)
        .group_by(TherapySession.kind)
    ).all()
    assert dict(kinds) == {"preparation": 3, "dosing": 3, "integration": 9}


def test_participant_page_charts_every_dosing_session(
    client: FlaskClient, db_session: Session, team: Team
) -> None:
    """SPEC §7: the participant page has a vital-signs chart for each dosing session, with
    the thresholds drawn, each linked to its session."""
    participant = _participant_at(db_session, team, "completed")
    dosing = list(
        db_session.scalars(
            sa.select(TherapySession)
            .where(TherapySession.participant_id == participant.id, TherapySession.kind == "dosing")
            .order_by(TherapySession.scheduled_at)
        )
    )
    assert len(dosing) == 3
    login(client, team.coordinator.username)
    shown = _text(client.get(f"/participants/{participant.id}"))
    assert "Vital signs of the dosing sessions" in shown
    assert shown.count('class="vitals-chart"') == 3
    assert shown.count('class="threshold"') == 3 * 4  # systolic, diastolic, heart rate, temperature
    for row in dosing:
        assert f'href="/sessions/{row.id}">Dosing session #{row.id}</a>, cycle {row.cycle}' in shown

    screening = _participant_at(db_session, team, "enrolled", seed=8)
    assert "Vital signs of the dosing sessions" not in _text(
        client.get(f"/participants/{screening.id}")
    )
