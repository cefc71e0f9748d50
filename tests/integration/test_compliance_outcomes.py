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
from tracker.histories import Team, _move, run_histories, screen
from tracker.outcome_histories import OutcomePlan, outcome_history
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.participants.models import Participant
from tracker.participants.services import enrol_participant
from tracker.paths import FIXTURES
from tracker.protocol.compliance import run_checks
from tracker.protocol.compliance_records import Outcome, StudyFacts
from tracker.reports import compliance
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


def _under_mdd(db: Session) -> None:
    text = (FIXTURES / "protocols" / "mdma-mdd-v1.toml").read_text(encoding="utf-8")
    activate_protocol(db, Actor.system(), text)


def test_who_was_never_treated_is_not_followed_up(db_session: Session, team: Team) -> None:
    """A screen failure closes the participant, but treatment never began: no follow-up
    timepoint is due, so C17 does not apply and the retention figures do not count them."""
    _under_mdd(db_session)
    rng = random.Random(5)
    participant = enrol_participant(
        db_session,
        team.as_coordinator,
        site=team.coordinator.site,
        sex="female",
        year_of_birth=1980,
        therapists=[team.therapists[0].username],
    )
    screen(db_session, team, participant, rng, yes={"bipolar_i": "Bipolar I since 2016"})
    _move(db_session, team.as_coordinator, participant, "fail_screening", reason="Bipolar I")
    db_session.commit()
    clock.travel(timedelta(days=420))  # past every follow-up window, counted from that day
    results = _results(db_session, participant)
    assert results["C17"].outcome is Outcome.NOT_APPLICABLE  # type: ignore[attr-defined]
    (record,) = load_records(db_session, [participant])
    assert record.anchors is not None and record.anchors.treatment_ended_on is None


def test_retention_counts_everyone_who_left_treatment_hand_worked(
    db_session: Session, team: Team
) -> None:
    """Three participants under the depression protocol, their follow-up worked out by hand:
    A is assessed at every timepoint; B stops after cycle 1 and stays in follow-up with the
    6-month timepoint left undone; C finishes treatment and withdraws before the 6-month
    window opens. A year and a half later:

    timepoint         A      B      C          done missed withdrawn lost  rate
    primary endpoint  done   done   done        3     0       0       0   3/3
    month 6           done   lost   withdrawn   1     0       1       1   1/3
    month 12          done   lost   withdrawn   1     0       1       1   1/3
    """
    _under_mdd(db_session)
    rater = make_user(db_session, "rater", "S01")

    def history(seed: int, plan: OutcomePlan):  # type: ignore[no-untyped-def]
        return outcome_history(db_session, team, rater, random.Random(seed), plan)

    # B and C first, so that C withdraws as its 6-month window opens; A afterwards.
    run_histories(
        [
            history(
                8,
                OutcomePlan(
                    "partial", stage="dosing_in_progress", discontinue=True, stop_before="month_6"
                ),
            ),
            history(9, OutcomePlan("relapse", stop_before="month_6")),
        ]
    )
    b, c = db_session.scalars(sa.select(Participant).order_by(Participant.id)).all()
    _move(
        db_session,
        team.as_coordinator,
        c,
        "withdraw",
        reason="Moved abroad; declined further contact.",
        withdrawal_category="participant_decision",
    )
    run_histories([history(7, OutcomePlan("responder"))])
    db_session.commit()
    a = db_session.scalars(sa.select(Participant).order_by(Participant.id.desc())).first()
    assert a is not None
    assert (a.state, b.state, c.state) == ("completed", "follow_up", "withdrawn")
    db_session.commit()
    clock.travel(timedelta(days=540))

    summary = compliance.Summary()
    header = compliance.report_header(db_session, "Test", compliance.ReportFilter())
    results = {
        row.study_id: {r.check_id: r.outcome for r in row.results}
        for row in compliance.participant_results(
            db_session, None, compliance.ReportFilter(), header, summary
        )
    }
    figures = {
        r.timepoint: (r.followed, r.done, r.missed, r.withdrawn, r.lost, r.rate)
        for r in summary.retention
    }
    assert figures == {
        "primary_endpoint": (3, 3, 0, 0, 0, 1.0),
        "month_6": (3, 1, 0, 1, 1, 0.333),
        "month_12": (3, 1, 0, 1, 1, 0.333),
    }
    # The lost timepoints fail C17 for B only; C's withdrawal is its own recorded reason.
    assert results[a.study_id]["C17"] is Outcome.PASS
    assert results[b.study_id]["C17"] is Outcome.FAIL
    assert results[c.study_id]["C17"] is Outcome.PASS
    as_json = summary.to_dict()["retention"]
    assert as_json[1] == {  # type: ignore[index]
        "protocol": "mdma-mdd v1",
        "timepoint": "month_6",
        "title": "Durability, 6 months after the last dosing",
        "followed": 3,
        "due": 3,
        "done": 1,
        "missed": 0,
        "withdrawn": 1,
        "lost": 1,
        "not_due": 0,
        "retention_rate": 0.333,
    }
