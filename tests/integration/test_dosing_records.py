"""Dose rules, vital-sign thresholds and alerts, effects, automatic holds, notes, and the
guards they make real."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import with_pregnancy_tests
from tracker import clock
from tracker.dosing import services as dosing_services
from tracker.errors import InvalidInput, PermissionDenied, RuleViolation
from tracker.histories import protocol_history, run_histories, simple_session
from tracker.notes import services as notes_services
from tracker.notes.models import Note
from tracker.participants.models import Participant, ProtocolDeviation
from tracker.participants.transitions import apply_transition, options_for
from tracker.safety import services as safety_services
from tracker.sessions import services as session_services
from tracker.sessions.models import TherapySession


def _participant(session: Session) -> Participant:
    return session.scalar(sa.select(Participant).order_by(Participant.id.desc()).limit(1))


def _vitals(session, team, row, at, systolic=120, diastolic=80, heart_rate=72, temperature_c=36.8):  # type: ignore[no-untyped-def]
    return dosing_services.record_vital_signs(
        session,
        team.as_therapist(),
        row,
        measured_at=at,
        systolic=systolic,
        diastolic=diastolic,
        heart_rate=heart_rate,
        temperature_c=temperature_c,
    )


def _dose(session, team, row, at, mg, kind="initial", **kw):  # type: ignore[no-untyped-def]
    return dosing_services.record_dose(
        session,
        kw.pop("who", team.as_therapist()),
        row,
        administered_at=at,
        amount_mg=mg,
        kind=kind,
        **kw,
    )


@pytest.mark.parametrize("mg,ok", [(80, True), (120, True), (100, False), (180, False)])
def test_initial_dose_amounts(db_session: Session, team, dosing, mg: int, ok: bool) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    if ok:
        assert _dose(db_session, team, row, start + timedelta(minutes=10), mg).amount_mg == mg
    else:
        with pytest.raises(RuleViolation, match="80 mg or 120 mg"):
            _dose(db_session, team, row, start + timedelta(minutes=10), mg)


@pytest.mark.parametrize(
    "minutes,mg,problem",
    [
        (100, 60, None),
        (89, 60, "90 to 150 minutes"),
        (151, 60, "90 to 150 minutes"),
        (100, 40, "must be 60 mg"),
    ],
)
def test_supplemental_dose_timing_and_amount(
    db_session: Session, team, dosing, minutes, mg, problem
) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    clock.travel(timedelta(hours=1))
    _dose(db_session, team, row, start + timedelta(minutes=5), 120)
    at = start + timedelta(minutes=5 + minutes)
    if problem is None:
        assert _dose(db_session, team, row, at, mg, "supplemental").kind == "supplemental"
        with pytest.raises(RuleViolation, match="already given"):
            _dose(db_session, team, row, at + timedelta(minutes=1), mg, "supplemental")
    else:
        with pytest.raises(RuleViolation, match=problem):
            _dose(db_session, team, row, at, mg, "supplemental")


def test_second_initial_and_supplemental_without_initial_are_refused(
    db_session: Session, team, dosing
) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    with pytest.raises(RuleViolation, match="needs an initial dose"):
        _dose(db_session, team, row, start + timedelta(minutes=5), 40, "supplemental")
    _dose(db_session, team, row, start + timedelta(minutes=5), 80)
    with pytest.raises(RuleViolation, match="already given"):
        _dose(db_session, team, row, start + timedelta(minutes=6), 80)


def test_dose_times_are_checked(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    with pytest.raises(InvalidInput) as error:
        _dose(db_session, team, row, clock.now() + timedelta(minutes=5), 80)
    assert "future" in error.value.message
    with pytest.raises(InvalidInput, match="before the session started"):
        _dose(db_session, team, row, start - timedelta(minutes=1), 80)


@pytest.mark.parametrize(
    "field,value",
    [
        ("systolic", 160),
        ("diastolic", 110),
        ("heart_rate", 110),
        ("temperature_c", 38.0),
    ],
)
def test_each_threshold_raises_an_alert_and_one_below_does_not(
    db_session: Session, team, dosing, field, value
) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    below = value - (0.1 if field == "temperature_c" else 1)
    quiet = _vitals(db_session, team, row, start + timedelta(minutes=5), **{field: below})
    assert quiet.alerts == []
    loud = _vitals(db_session, team, row, start + timedelta(minutes=10), **{field: value})
    assert [(a.sign, a.value, a.threshold) for a in loud.alerts] == [(field, value, value)]


def test_breach_blocks_the_supplemental_dose_until_an_investigator_documents_why(
    db_session: Session, team, dosing
) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    _vitals(db_session, team, row, start + timedelta(minutes=2))
    _dose(db_session, team, row, start + timedelta(minutes=5), 120)
    _vitals(db_session, team, row, start + timedelta(minutes=100), systolic=165)
    at = start + timedelta(minutes=110)
    with pytest.raises(RuleViolation, match="breach a threshold"):
        _dose(db_session, team, row, at, 60, "supplemental")
    with pytest.raises(InvalidInput, match="Only an investigator"):
        _dose(db_session, team, row, at, 60, "supplemental", breach_justification="fine")
    dose = _dose(
        db_session,
        team,
        row,
        at,
        60,
        "supplemental",
        who=team.as_investigator,
        breach_justification="Isolated reading; repeat 150/92 manually; benefit outweighs risk.",
    )
    assert (
        dose.breach_justification.startswith("Isolated")
        and dose.justified_by_id == team.investigator.id
    )


def test_acknowledging_an_alert_needs_a_note(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    (alert,) = _vitals(db_session, team, row, start + timedelta(minutes=5), heart_rate=121).alerts
    with pytest.raises(InvalidInput, match="note is required"):
        dosing_services.acknowledge_alert(db_session, team.as_therapist(), alert, "  ")
    dosing_services.acknowledge_alert(
        db_session, team.as_therapist(), alert, "Anxious; breathing exercise; HR 96 after."
    )
    assert alert.acknowledged_at is not None and alert.acknowledged_by_id == team.therapists[0].id
    with pytest.raises(InvalidInput, match="already acknowledged"):
        dosing_services.acknowledge_alert(db_session, team.as_therapist(), alert, "again")


def test_complete_dosing_lists_every_missing_requirement_then_allows(
    db_session: Session, team, dosing
) -> None:  # type: ignore[no-untyped-def]
    participant, row, start = dosing
    with pytest.raises(RuleViolation) as error:
        apply_transition(
            db_session,
            team.as_therapist(),
            participant,
            "complete_dosing",
            expected_version=participant.version,
        )
    assert any("not completed" in d or "completed" in d for d in error.value.details)
    assert len(error.value.details) >= 3
    # Record a full session retrospectively.
    clock.travel(timedelta(hours=8))
    (alert,) = _vitals(db_session, team, row, start + timedelta(minutes=5), systolic=170).alerts
    _dose(db_session, team, row, start + timedelta(minutes=20), 80)
    moment = start + timedelta(minutes=50)
    while moment < start + timedelta(hours=9):
        _vitals(db_session, team, row, moment)
        moment += timedelta(minutes=50)
    session_services.update_session(
        db_session,
        team.as_therapist(),
        row,
        ended_at=start + timedelta(hours=9, minutes=5),
        status="completed",
        overnight_stay=True,
    )
    options = {o.name: o for o in options_for(db_session, participant, "therapist")}
    assert options["complete_dosing"].reasons and any(
        "alert" in r for r in options["complete_dosing"].reasons
    )
    dosing_services.acknowledge_alert(db_session, team.as_therapist(), alert, "Rechecked: 142/88.")
    apply_transition(
        db_session,
        team.as_therapist(),
        participant,
        "complete_dosing",
        expected_version=participant.version,
    )
    assert participant.state == "integration"


def test_sessions_of_the_wrong_kind_are_refused(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    participant, _, _ = dosing
    with pytest.raises(RuleViolation, match="only dosing sessions"):
        session_services.schedule_session(
            db_session,
            team.as_coordinator,
            participant,
            kind="integration",
            scheduled_at=clock.now(),
        )
    with pytest.raises(RuleViolation, match="already has a dosing session"):
        session_services.schedule_session(
            db_session, team.as_coordinator, participant, kind="dosing", scheduled_at=clock.now()
        )


def test_session_times_are_checked(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    _, row, start = dosing
    _vitals(db_session, team, row, start + timedelta(minutes=30))
    with pytest.raises(InvalidInput) as error:
        session_services.update_session(
            db_session, team.as_therapist(), row, ended_at=start + timedelta(minutes=20)
        )
    assert "after that end time" in error.value.message
    with pytest.raises(InvalidInput, match="after the start"):
        session_services.update_session(
            db_session, team.as_therapist(), row, ended_at=start - timedelta(minutes=1)
        )
    with pytest.raises(InvalidInput, match="future"):
        session_services.update_session(
            db_session, team.as_therapist(), row, ended_at=clock.now() + timedelta(hours=1)
        )


def test_a_serious_adverse_event_places_the_hold_and_blocks_dosing(
    db_session: Session, team, dosing
) -> None:  # type: ignore[no-untyped-def]
    participant, _, _ = dosing
    event = safety_services.record_adverse_event(
        db_session,
        team.as_therapist(),
        participant,
        term="Chest pain",
        grade=3,
        serious=True,
        serious_criteria=["hospitalisation"],
        onset_at=clock.now() - timedelta(hours=1),
    )
    assert participant.state == "on_hold" and participant.held_from == "dosing"
    assert event.report_due_at == event.aware_at + timedelta(hours=24)
    with pytest.raises(RuleViolation, match="serious adverse event"):
        apply_transition(
            db_session,
            team.as_investigator,
            participant,
            "release_hold",
            expected_version=participant.version,
            reason="ok",
        )
    apply_transition(
        db_session,
        team.as_investigator,
        participant,
        "release_hold",
        expected_version=participant.version,
        reason="Cardiology cleared; troponin normal.",
        override=True,
    )
    assert participant.state == "dosing"
    deviation = db_session.scalar(
        sa.select(ProtocolDeviation).where(ProtocolDeviation.participant_id == participant.id)
    )
    assert deviation.guard_code == "open_serious_adverse_event" and deviation.reason.startswith(
        "Cardiology"
    )


def test_adverse_event_input_and_assessment(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    participant, _, _ = dosing
    with pytest.raises(InvalidInput) as error:
        safety_services.record_adverse_event(
            db_session,
            team.as_therapist(),
            participant,
            term="",
            grade=7,
            serious=True,
            serious_criteria=["boredom"],
            onset_at=clock.now() + timedelta(days=1),
        )
    assert len(error.value.details) >= 4
    event = safety_services.record_adverse_event(
        db_session,
        team.as_therapist(),
        participant,
        term="Headache",
        grade=1,
        serious=False,
        onset_at=clock.now() - timedelta(hours=2),
    )
    assert participant.state == "dosing" and event.report_due_at is None
    with pytest.raises(PermissionDenied, match="therapist role may not"):
        safety_services.assess_adverse_event(
            db_session, team.as_therapist(), event, relatedness="possible", expected=True
        )
    safety_services.assess_adverse_event(
        db_session, team.as_investigator, event, relatedness="probable", expected=True
    )
    assert (event.relatedness, event.expected, event.assessed_by_id) == (
        "probable",
        True,
        team.investigator.id,
    )


@pytest.mark.parametrize(
    "answers,positive",
    [
        ({"ideation": True}, False),
        ({"ideation": True, "intent": True}, True),
        ({"plan": True}, True),
        ({"behaviour": True}, True),
        ({}, False),
    ],
)
def test_suicidality_screen(db_session: Session, team, dosing, answers, positive) -> None:  # type: ignore[no-untyped-def]
    participant, row, _ = dosing
    values = {"ideation": False, "intent": False, "plan": False, "behaviour": False, **answers}
    screen = safety_services.record_suicidality_screen(
        db_session, team.as_therapist(), participant, session_id=row.id, **values
    )
    assert screen.positive is positive
    assert participant.state == ("on_hold" if positive else "dosing")


def test_notes_are_append_only_versions(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    participant, row, _ = dosing
    note = notes_services.add_note(
        db_session, team.as_therapist(), participant, "<b>calm</b> & settled", session_id=row.id
    )
    with pytest.raises(InvalidInput, match="reason"):
        notes_services.amend_note(db_session, team.as_therapist(), note, "calm, settled", "")
    second = notes_services.amend_note(
        db_session, team.as_therapist(), note, "calm, settled, slept", "added sleep"
    )
    with pytest.raises(InvalidInput, match="latest version"):
        notes_services.amend_note(db_session, team.as_therapist(), note, "other", "stale")
    history = notes_services.note_history(db_session, second)
    assert [(n.version, n.text) for n in history] == [
        (1, "<b>calm</b> & settled"),
        (2, "calm, settled, slept"),
    ]
    assert history[1].amendment_reason == "added sleep" and history[1].root_id == note.id
    savepoint = db_session.begin_nested()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        db_session.execute(sa.update(Note).where(Note.id == note.id).values(text="rewritten"))
    savepoint.rollback()
    savepoint = db_session.begin_nested()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        db_session.execute(sa.delete(Note).where(Note.id == note.id))
    savepoint.rollback()


def test_effects_checklist(db_session: Session, team, dosing) -> None:  # type: ignore[no-untyped-def]
    _, row, _ = dosing
    with pytest.raises(InvalidInput) as error:
        dosing_services.record_effects(
            db_session, team.as_therapist(), row, effects=[], none_observed=False
        )
    assert "none were observed" in error.value.message
    with pytest.raises(InvalidInput, match="cannot be attested together"):
        dosing_services.record_effects(
            db_session, team.as_therapist(), row, effects=["euphoria"], none_observed=True
        )
    record = dosing_services.record_effects(
        db_session, team.as_therapist(), row, effects=["euphoria", "craving"], none_observed=False
    )
    assert record.effects == ["craving", "euphoria"]


def test_start_dosing_guards_interval_pregnancy_and_override(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(8), "integration")])
    participant = _participant(db_session)
    with_pregnancy_tests(participant)
    with pytest.raises(RuleViolation) as error:
        apply_transition(
            db_session,
            team.as_coordinator,
            participant,
            "start_dosing",
            expected_version=participant.version,
        )
    details = " ".join(error.value.details)
    assert "pregnancy" in details.lower() and "days" in details
    safety_services.record_pregnancy_test(
        db_session,
        team.as_coordinator,
        participant,
        tested_at=clock.now() - timedelta(hours=2),
        result="negative",
    )
    # Too early, and only an investigator may override the window, with a reason.
    with pytest.raises(RuleViolation):
        apply_transition(
            db_session,
            team.as_coordinator,
            participant,
            "start_dosing",
            expected_version=participant.version,
            override=True,
            reason="x",
        )
    applied = apply_transition(
        db_session,
        team.as_investigator,
        participant,
        "start_dosing",
        expected_version=participant.version,
        override=True,
        reason="Participant travelling from day 21; dosing brought forward.",
    )
    assert participant.state == "dosing" and participant.cycle == 2
    assert [str(f.code) for f in applied.decision.overridden] == ["dosing_interval"]


def test_complete_protocol_needs_the_third_cycle(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(9), "integration")])
    participant = _participant(db_session)
    with pytest.raises(RuleViolation, match="cycle"):
        apply_transition(
            db_session,
            team.as_coordinator,
            participant,
            "complete_protocol",
            expected_version=participant.version,
        )
    assert db_session.scalar(sa.select(sa.func.count()).select_from(TherapySession)) > 0
    simple_session(db_session, team, participant, "integration")


def test_a_reading_days_after_the_start_needs_its_time_confirmed(
    db_session: Session, team, dosing
) -> None:  # type: ignore[no-untyped-def]
    """A mistyped date is the likelier story: refused with the figures until confirmed, then
    kept in the table but out of the chart's first day, which stays readable."""
    from tracker.dosing.presenters import vitals_chart
    from tracker.dosing.queries import dosing_record

    participant, row, start = dosing
    _vitals(db_session, team, row, start + timedelta(minutes=10))
    clock.travel(timedelta(days=9))
    late = clock.now() - timedelta(minutes=1)
    with pytest.raises(InvalidInput, match=r"9 days .* after the session started .* confirm it"):
        _vitals(db_session, team, row, late)
    reading = dosing_services.record_vital_signs(
        db_session,
        team.as_therapist(),
        row,
        measured_at=late,
        systolic=120,
        diastolic=80,
        heart_rate=72,
        temperature_c=36.8,
        time_confirmed=True,
    )
    assert reading.id is not None
    chart = str(vitals_chart(participant, row, dosing_record(db_session, row)))
    assert "1 readings over" in chart and "1 later than a day after the start" in chart
    assert ">1 h<" in chart and ">200 h<" not in chart  # the first day's scale, not nine days
