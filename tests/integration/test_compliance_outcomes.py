"""Compliance checks C15 to C17 (SPEC §10) over participants assessed by the generated outcome
histories, each with a passing case and a planted fault. The services refuse to create these
faults, so the rows are altered directly, as a data fix outside the tracker would."""

from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import make_user
from tracker import clock
from tracker.audit.services import Actor
from tracker.histories import Team, run_histories
from tracker.outcome_histories import OutcomePlan, outcome_history
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.participants.models import Participant
from tracker.paths import FIXTURES
from tracker.protocol.compliance import run_checks
from tracker.protocol.compliance_records import Outcome, StudyFacts
from tracker.reports.records import load_records
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol, definition_of


def _assessed(db: Session, team: Team, plan: OutcomePlan) -> Participant:
    text = (FIXTURES / "protocols" / "mdma-mdd-v1.toml").read_text(encoding="utf-8")
    activate_protocol(db, Actor.system(), text)
    rater = make_user(db, "rater", "S01")
    run_histories([outcome_history(db, team, rater, random.Random(41), plan)])
    db.commit()
    return db.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()  # type: ignore[return-value]


def _results(db: Session, participant: Participant) -> dict[str, object]:
    db.expire_all()
    (record,) = load_records(db, [participant])
    study = StudyFacts(audit_ok=True, audit_problem=None, now=clock.now())
    protocol = definition_of(participant.protocol_version)
    return {r.check_id: r for r in run_checks(record, protocol, study)}


def test_a_fully_assessed_participant_passes_c15_to_c17(db_session: Session, team: Team) -> None:
    participant = _assessed(db_session, team, OutcomePlan("responder"))
    assert participant.state == "completed"
    results = _results(db_session, participant)
    assert [results[c].outcome for c in ("C15", "C16", "C17")] == [Outcome.PASS] * 3  # type: ignore[attr-defined]


def test_each_planted_fault_is_flagged(db_session: Session, team: Team) -> None:
    participant = _assessed(db_session, team, OutcomePlan("partial"))
    madrs = db_session.scalars(
        sa.select(Assessment).where(
            Assessment.participant_id == participant.id,
            Assessment.instrument == "madrs",
            Assessment.timepoint == "cycle_1",
        )
    ).one()
    # C15: moved 20 days out of its window with no reason.
    db_session.execute(
        sa.update(Assessment)
        .where(Assessment.id == madrs.id)
        .values(administered_at=madrs.administered_at + timedelta(days=20), reason=None)
    )
    # C16: the primary endpoint's MADRS recorded by a therapist of the participant.
    therapist = (
        db_session.scalars(
            sa.select(TherapySession).where(TherapySession.participant_id == participant.id)
        )
        .first()
        .therapists[0]
    )  # type: ignore[union-attr]
    db_session.execute(
        sa.update(Assessment)
        .where(
            Assessment.participant_id == participant.id,
            Assessment.instrument == "madrs",
            Assessment.timepoint == "primary_endpoint",
        )
        .values(recorded_by_id=therapist.id)
    )
    # C17: the 12-month assessments lost without a word, and their window since closed.
    db_session.execute(
        sa.delete(Assessment).where(
            Assessment.participant_id == participant.id, Assessment.timepoint == "month_12"
        )
    )
    clock.travel(timedelta(days=45))
    results = _results(db_session, participant)
    c15, c16, c17 = (results[c] for c in ("C15", "C16", "C17"))
    assert c15.outcome is Outcome.FAIL  # type: ignore[attr-defined]
    assert c15.evidence[0].record.startswith("madrs at After dosing cycle 1")  # type: ignore[attr-defined]
    assert "no reason" in c15.evidence[0].found  # type: ignore[attr-defined]
    assert c16.outcome is Outcome.FAIL  # type: ignore[attr-defined]
    assert f"{therapist.username} (therapist), present at a session" == c16.evidence[0].found  # type: ignore[attr-defined]
    assert c17.outcome is Outcome.FAIL  # type: ignore[attr-defined]
    assert c17.evidence[0].record == "Durability, 12 months after the last dosing"  # type: ignore[attr-defined]
    assert c17.evidence[0].found == "no madrs, phq9, cssrs"  # type: ignore[attr-defined]

    # With a reason the late MADRS is a documented deviation; a missed record explains month 12.
    db_session.execute(
        sa.update(Assessment).where(Assessment.id == madrs.id).values(reason="Travelling.")
    )
    db_session.add(
        MissedTimepoint(
            participant_id=participant.id,
            timepoint="month_12",
            reason="Moved abroad.",
            recorded_by_id=team.coordinator.id,
        )
    )
    db_session.flush()
    results = _results(db_session, participant)
    assert results["C15"].outcome is Outcome.PASS  # type: ignore[attr-defined]
    assert "Travelling." in results["C15"].note  # type: ignore[attr-defined]
    assert results["C17"].outcome is Outcome.PASS  # type: ignore[attr-defined]


def test_outcome_checks_do_not_apply_to_a_protocol_without_outcomes(
    db_session: Session, team: Team
) -> None:
    from tracker.histories import protocol_history

    run_histories([protocol_history(db_session, team, random.Random(2), "integration")])
    participant = db_session.scalars(sa.select(Participant)).first()
    assert participant is not None
    results = _results(db_session, participant)
    assert {results[c].outcome for c in ("C15", "C16", "C17")} == {Outcome.NOT_APPLICABLE}  # type: ignore[attr-defined]
