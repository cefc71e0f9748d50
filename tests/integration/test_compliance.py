"""Every compliance check with a passing and a failing case, on both databases. The failing
records are made the way they arise in practice: an override, late data entry, an event not
followed up; where the services refuse to create the fault, the row is altered directly."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import without_pregnancy_tests
from tracker import clock
from tracker.dosing.models import (
    DoseAdministration,
    SessionEffects,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.histories import dosing_session, protocol_history, run_histories
from tracker.participants.models import ChecklistSignature, Participant, ProtocolDeviation
from tracker.protocol.compliance import run_checks
from tracker.protocol.compliance_records import Outcome, StudyFacts
from tracker.reports.records import load_records
from tracker.safety import services as safety_services
from tracker.safety.models import AdverseEvent
from tracker.sessions.models import TherapySession
from tracker.study.services import definition_of


def _results(
    session: Session, participant: Participant, audit_ok: bool = True
) -> dict[str, object]:
    session.expire_all()
    (record,) = load_records(session, [participant])
    study = StudyFacts(
        audit_ok=audit_ok, audit_problem=None if audit_ok else "event 3 altered", now=clock.now()
    )
    return {
        r.check_id: r
        for r in run_checks(record, definition_of(participant.protocol_version), study)
    }


def _outcomes(results: dict[str, object]) -> dict[str, str]:
    return {k: v.outcome.value for k, v in results.items()}  # type: ignore[attr-defined]


@pytest.fixture
def completed(db_session: Session, team) -> Participant:  # type: ignore[no-untyped-def]
    from tests.factories import keep_ledger

    team, _ = keep_ledger(db_session, team)  # every dose covered by a dispensing (C19)
    run_histories([protocol_history(db_session, team, random.Random(11), "completed")])
    return db_session.scalar(sa.select(Participant))


def _dosing(session: Session, participant: Participant, cycle: int = 1) -> TherapySession:
    return session.scalar(
        sa.select(TherapySession).where(
            TherapySession.participant_id == participant.id,
            TherapySession.kind == "dosing",
            TherapySession.cycle == cycle,
        )
    )


def test_a_clean_history_passes_every_applicable_check(
    db_session: Session, completed: Participant
) -> None:
    outcomes = _outcomes(_results(db_session, completed))
    assert {k for k, v in outcomes.items() if v == "fail"} == set()
    assert outcomes["C12"] == "not_applicable" and outcomes["C10"] == "not_applicable"
    assert {k for k, v in outcomes.items() if v == "pass"} >= {
        "C01",
        "C02",
        "C03",
        "C04",
        "C05",
        "C06",
        "C07",
        "C08",
        "C09",
        "C13",
        "C14",
        "C19",
    }


def test_c01_consent_after_the_first_procedure(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    run_histories([protocol_history(db_session, team, random.Random(12), "ready_to_confirm")])
    participant = db_session.scalar(sa.select(Participant))
    assert _results(db_session, participant)["C01"].outcome is Outcome.PASS  # type: ignore[attr-defined]
    db_session.execute(
        sa.text("UPDATE consents SET signed_on = :d"), {"d": clock.now().date() + timedelta(days=1)}
    )
    result = _results(db_session, participant)["C01"]
    assert result.outcome is Outcome.FAIL and "signed on" in result.evidence[0].found  # type: ignore[attr-defined]


def test_c02_signature_after_the_first_dosing(db_session: Session, completed: Participant) -> None:
    db_session.execute(sa.update(ChecklistSignature).values(signed_at=clock.now()))
    result = _results(db_session, completed)["C02"]
    assert result.outcome is Outcome.FAIL and result.evidence[0].record == "checklist signature"  # type: ignore[attr-defined]


def test_c03_too_few_preparation_sessions(db_session: Session, completed: Participant) -> None:
    first = db_session.scalar(
        sa.select(TherapySession.id).where(TherapySession.kind == "preparation")
    )
    db_session.execute(
        sa.update(TherapySession).where(TherapySession.id == first).values(status="cancelled")
    )
    result = _results(db_session, completed)["C03"]
    assert result.outcome is Outcome.FAIL and result.evidence[0].found == "2 completed"  # type: ignore[attr-defined]


def test_c04_and_c12_an_override_of_the_interval_is_a_documented_deviation(
    db_session: Session, team
) -> None:  # type: ignore[no-untyped-def]
    from tracker.participants.transitions import apply_transition

    run_histories([protocol_history(db_session, team, random.Random(13), "integration")])
    participant = db_session.scalar(sa.select(Participant))
    without_pregnancy_tests(participant)
    apply_transition(
        db_session,
        team.as_investigator,
        participant,
        "start_dosing",
        expected_version=participant.version,
        override=True,
        reason="Travel from day 21",
    )
    clock.travel(timedelta(hours=11))
    dosing_session(db_session, team, participant, random.Random(1))
    results = _results(db_session, participant)
    assert results["C04"].outcome is Outcome.FAIL  # type: ignore[attr-defined]
    assert "Documented deviation" in results["C04"].note  # type: ignore[attr-defined]
    assert results["C12"].outcome is Outcome.PASS  # type: ignore[attr-defined]
    db_session.execute(sa.update(ProtocolDeviation).values(reason=" "))
    c12 = _results(db_session, participant)["C12"]
    assert c12.outcome is Outcome.FAIL and "dosing_interval" in c12.evidence[0].expected  # type: ignore[attr-defined]


def test_c05_a_dose_outside_the_protocol(db_session: Session, completed: Participant) -> None:
    dose = db_session.scalar(
        sa.select(DoseAdministration).where(DoseAdministration.kind == "supplemental")
    )
    db_session.execute(
        sa.update(DoseAdministration).where(DoseAdministration.id == dose.id).values(amount_mg=100)
    )
    result = _results(db_session, completed)["C05"]
    assert result.outcome is Outcome.FAIL  # type: ignore[attr-defined]
    found = " ".join(e.found for e in result.evidence)  # type: ignore[attr-defined]
    assert "supplemental dose must be" in found


def test_c06_a_gap_in_the_vital_signs(db_session: Session, completed: Participant) -> None:
    dosing = _dosing(db_session, completed)
    readings = list(
        db_session.scalars(
            sa.select(VitalSignReading)
            .where(VitalSignReading.session_id == dosing.id)
            .order_by(VitalSignReading.measured_at)
        )
    )
    middle = [r.id for r in readings[4:7]]
    db_session.execute(sa.delete(VitalSignAlert).where(VitalSignAlert.reading_id.in_(middle)))
    db_session.execute(sa.delete(VitalSignReading).where(VitalSignReading.id.in_(middle)))
    result = _results(db_session, completed)["C06"]
    assert result.outcome is Outcome.FAIL and "gap of" in result.evidence[0].found  # type: ignore[attr-defined]


def test_c07_no_overnight_stay_and_one_therapist(
    db_session: Session, completed: Participant
) -> None:
    dosing = _dosing(db_session, completed, 2)
    db_session.execute(
        sa.update(TherapySession).where(TherapySession.id == dosing.id).values(overnight_stay=False)
    )
    db_session.execute(
        sa.text(
            "DELETE FROM session_therapists WHERE session_id = :s AND user_id = "
            "(SELECT MAX(user_id) FROM session_therapists WHERE session_id = :s)"
        ),
        {"s": dosing.id},
    )
    result = _results(db_session, completed)["C07"]
    assert result.outcome is Outcome.FAIL  # type: ignore[attr-defined]
    assert {e.expected for e in result.evidence} == {
        "2 therapists present",
        "overnight stay recorded",
    }  # type: ignore[attr-defined]


def test_c08_an_unacknowledged_alert(db_session: Session, completed: Participant) -> None:
    assert _results(db_session, completed)["C08"].outcome is Outcome.PASS  # type: ignore[attr-defined]
    db_session.execute(sa.update(VitalSignAlert).values(acknowledged_at=None, acknowledgement=None))
    result = _results(db_session, completed)["C08"]
    assert result.outcome is Outcome.FAIL and result.evidence[0].found == "not acknowledged"  # type: ignore[attr-defined]


def test_c09_late_first_integration_session(db_session: Session, completed: Participant) -> None:
    dosing = _dosing(db_session, completed)
    first = db_session.scalar(
        sa.select(TherapySession)
        .where(TherapySession.kind == "integration", TherapySession.cycle == 1)
        .order_by(TherapySession.started_at)
    )
    late = dosing.ended_at + timedelta(hours=30)
    db_session.execute(
        sa.update(TherapySession)
        .where(TherapySession.id == first.id)
        .values(started_at=late, ended_at=late + timedelta(hours=1))
    )
    result = _results(db_session, completed)["C09"]
    assert (
        result.outcome is Outcome.FAIL
        and "first integration session by" in result.evidence[0].expected
    )  # type: ignore[attr-defined]


def test_c10_and_c11_a_serious_event_not_assessed_or_reported(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    run_histories(
        [
            protocol_history(
                db_session, team, random.Random(14), "completed", serious_event_in_cycle=1
            )
        ]
    )
    participant = db_session.scalar(sa.select(Participant))
    results = _results(db_session, participant)
    assert results["C10"].outcome is Outcome.FAIL  # type: ignore[attr-defined]
    assert results["C11"].outcome is Outcome.PASS and "not yet due" in results["C11"].note  # type: ignore[attr-defined]
    clock.travel(timedelta(hours=25))
    assert _results(db_session, participant)["C11"].outcome is Outcome.FAIL  # type: ignore[attr-defined]
    event = db_session.scalar(sa.select(AdverseEvent))
    safety_services.assess_adverse_event(
        db_session, team.as_investigator, event, relatedness="possible", expected=True
    )
    safety_services.update_adverse_event(
        db_session, team.as_investigator, event, reported_at=event.aware_at + timedelta(hours=3)
    )
    results = _results(db_session, participant)
    assert results["C10"].outcome is Outcome.PASS and results["C11"].outcome is Outcome.PASS  # type: ignore[attr-defined]


def test_c13_a_dosing_session_without_its_effects_checklist(
    db_session: Session, completed: Participant
) -> None:
    db_session.execute(
        sa.delete(SessionEffects).where(
            SessionEffects.session_id == _dosing(db_session, completed, 3).id
        )
    )
    result = _results(db_session, completed)["C13"]
    assert result.outcome is Outcome.FAIL and len(result.evidence) == 1  # type: ignore[attr-defined]


def test_c14_follows_the_audit_trail(db_session: Session, completed: Participant) -> None:
    assert _results(db_session, completed, audit_ok=True)["C14"].outcome is Outcome.PASS  # type: ignore[attr-defined]
    result = _results(db_session, completed, audit_ok=False)["C14"]
    assert result.outcome is Outcome.FAIL and result.evidence[0].found == "event 3 altered"  # type: ignore[attr-defined]
