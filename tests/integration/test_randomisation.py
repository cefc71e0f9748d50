"""Randomisation and blinding through the services (SPEC §11), on SQLite and PostgreSQL: the
statistician's list on the audit trail by its hash only, randomising once in the stratum's
order, the start_dosing guard, emergency unblinding with re-authentication, guesses, and the
study's unblinding by two people."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import PASSWORD, actor, make_user
from tracker import clock
from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor
from tracker.auth.services import PasswordRefused
from tracker.errors import Conflict, PermissionDenied, RuleViolation
from tracker.histories import Team, _move, run_histories
from tracker.outcome_histories import OutcomePlan, outcome_history
from tracker.participants.models import Participant
from tracker.paths import FIXTURES
from tracker.protocol.compliance import run_checks
from tracker.protocol.compliance_records import Outcome, StudyFacts
from tracker.randomisation import queries, services
from tracker.randomisation.models import EmergencyUnblinding, RandomisationEntry
from tracker.reports.blinding import blinding_section
from tracker.reports.outcomes import outcome_rows
from tracker.reports.records import load_records
from tracker.sessions.models import TherapySession
from tracker.study.services import activate_protocol, definition_of

ARMS = ("midomafetamine", "active_placebo")
LABELS = ("Midomafetamine (MDMA) 120 mg + 60 mg", "Active placebo (methylphenidate 20 mg)")


def _randomised_protocol(db: Session):  # type: ignore[no-untyped-def]
    text = (FIXTURES / "protocols" / "mdma-mdd-v2.toml").read_text(encoding="utf-8")
    return activate_protocol(db, Actor.system(), text)


def _in_preparation(db: Session, team: Team, rater, count: int = 1) -> list[Participant]:  # type: ignore[no-untyped-def]
    """Participants in preparation with their baseline MADRS rated (their stratum is known)."""
    run_histories(
        [
            outcome_history(
                db,
                team,
                rater,
                random.Random(60 + i),
                OutcomePlan("responder", stage="preparation"),
            )
            for i in range(count)
        ]
    )
    db.commit()
    return list(db.scalars(sa.select(Participant).order_by(Participant.id)))[-count:]


@pytest.fixture
def study(db_session: Session, team: Team):  # type: ignore[no-untyped-def]
    version = _randomised_protocol(db_session)
    statistician = make_user(db_session, "statistician", None)
    rater = make_user(db_session, "rater", "S01")
    listed = services.generate_for(
        db_session, actor(statistician), version, per_stratum=12, seed=2026
    )
    return version, statistician, rater, listed


def test_the_list_is_on_record_by_its_hash_never_its_seed_or_arms(
    db_session: Session, study
) -> None:  # type: ignore[no-untyped-def]
    version, _statistician, _, listed = study
    entries = db_session.scalars(
        sa.select(RandomisationEntry).where(RandomisationEntry.list_id == listed.id)
    ).all()
    # One site (S01) and the MADRS's four bands: four strata, whole blocks of 4 or 6.
    assert {e.stratum for e in entries} == {
        "S01|normal",
        "S01|mild",
        "S01|moderate",
        "S01|severe",
    }
    assert Counter(e.arm for e in entries)["midomafetamine"] * 2 == len(entries)
    event = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "randomisation.list_store")
    ).one()
    assert (
        event.new_values["content_hash"]
        == listed.content_hash
        == services.list_hash(
            [
                services.ListEntry(e.stratum, e.position, e.block, e.block_size, e.arm)
                for e in entries
            ]
        )
    )
    text = str(event.new_values) + str(event.old_values)
    assert "2026" not in text  # the seed
    for arm in ARMS:
        assert arm not in text
    # Only the statistician stores a list.
    coordinator = make_user(db_session, "coordinator", "S01")
    with pytest.raises(PermissionDenied):
        services.generate_for(db_session, actor(coordinator), version, per_stratum=4, seed=1)


def test_a_participant_is_randomised_once_in_their_strata_order(
    db_session: Session, team: Team, study
) -> None:  # type: ignore[no-untyped-def]
    _, _, rater, listed = study
    first, second = _in_preparation(db_session, team, rater, 2)
    # The start_dosing guard: no first dosing before randomisation.
    with pytest.raises(RuleViolation, match="must be randomised before the first dosing"):
        _move(db_session, team.as_coordinator, first, "start_dosing")
    entry = services.randomise(
        db_session, team.as_coordinator, first, expected_version=first.version
    )
    stratum = services.stratum_of(db_session, first, services.definition_of(first.protocol_version))
    assert entry.stratum == stratum
    first_unused = db_session.scalars(
        sa.select(RandomisationEntry)
        .where(RandomisationEntry.list_id == listed.id, RandomisationEntry.stratum == stratum)
        .order_by(RandomisationEntry.position)
    ).first()
    assert first_unused is not None and first_unused.id == entry.id  # the stratum's first
    with pytest.raises(Conflict, match="already randomised"):
        services.randomise(db_session, team.as_coordinator, first, expected_version=first.version)
    with pytest.raises(Conflict, match="changed since you looked"):
        services.randomise(
            db_session, team.as_coordinator, second, expected_version=second.version - 1
        )
    # The trail names the number and the stratum, never the arm.
    event = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "participant.randomise")
    ).one()
    assert event.new_values == {
        "randomisation_number": entry.randomisation_number,
        "stratum": stratum,
    }
    # Blinded roles see the allocation but not the arm.
    assert queries.allocation_of(db_session, first.id) is not None
    assert queries.visible_arm(db_session, team.coordinator, first.id) is None
    assert queries.visible_arm(db_session, team.investigator, first.id) is None
    pharmacist = make_user(db_session, "pharmacist", "S01")
    assert queries.visible_arm(db_session, pharmacist, first.id) == entry.arm
    # Randomised, the first dosing may start.
    _move(db_session, team.as_coordinator, first, "start_dosing")
    assert first.state == "dosing"


def test_emergency_unblinding_needs_the_password_and_leaves_a_trace(
    db_session: Session, team: Team, study
) -> None:  # type: ignore[no-untyped-def]
    _, _, rater, _ = study
    (participant,) = _in_preparation(db_session, team, rater)
    entry = services.randomise(
        db_session, team.as_coordinator, participant, expected_version=participant.version
    )
    with pytest.raises(PasswordRefused):
        services.emergency_unblind(
            db_session,
            team.as_investigator,
            team.investigator,
            participant,
            password="wrong-password",
            reason="Serotonin syndrome suspected.",
        )
    assert queries.unblindings_of(db_session, participant.id) == []
    arm = services.emergency_unblind(
        db_session,
        team.as_investigator,
        team.investigator,
        participant,
        password=PASSWORD,
        reason="Serotonin syndrome suspected; treating physician needs the product.",
    )
    assert arm.code == entry.arm and arm.label in LABELS
    (unblinding,) = queries.unblindings_of(db_session, participant.id)
    assert unblinding.user_id == team.investigator.id
    assert queries.visible_arm(db_session, team.investigator, participant.id) == entry.arm
    other = make_user(db_session, "investigator", "S01")
    assert queries.visible_arm(db_session, other, participant.id) is None
    event = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "participant.emergency_unblind")
    ).one()
    assert event.reason.startswith("Serotonin syndrome")
    assert entry.arm not in str(event.new_values)

    # C18 reports it, with who, when and why; a planted unblinding without a reason fails.
    def c18():  # type: ignore[no-untyped-def]
        db_session.expire_all()
        (record,) = load_records(db_session, [participant])
        study = StudyFacts(audit_ok=True, audit_problem=None, now=clock.now())
        protocol = definition_of(participant.protocol_version)
        return next(r for r in run_checks(record, protocol, study) if r.check_id == "C18")

    result = c18()
    assert result.outcome is Outcome.PASS
    assert team.investigator.username in result.note and "Serotonin syndrome" in result.note
    db_session.execute(sa.update(EmergencyUnblinding).values(reason=" "))
    result = c18()
    assert result.outcome is Outcome.FAIL and result.evidence[0].found == "no reason"


def test_guesses_and_the_study_unblinding(db_session: Session, team: Team, study) -> None:  # type: ignore[no-untyped-def]
    _, statistician, rater, _ = study
    (participant,) = _in_preparation(db_session, team, rater)
    services.randomise(
        db_session, team.as_coordinator, participant, expected_version=participant.version
    )
    session = db_session.scalars(
        sa.select(TherapySession).where(TherapySession.participant_id == participant.id)
    ).first()
    assert session is not None
    # A guess follows a completed dosing session: a preparation session is refused.
    with pytest.raises(RuleViolation, match="completed dosing session"):
        services.record_guess(
            db_session,
            team.as_coordinator,
            participant,
            respondent="participant",
            guess="midomafetamine",
            confidence=4,
            session_id=session.id,
        )
    guess = services.record_guess(
        db_session,
        team.as_coordinator,
        participant,
        respondent="participant",
        guess="unsure",
        confidence=2,
        timepoint="primary_endpoint",
    )
    assert guess.respondent_user_id is None
    with pytest.raises(Conflict):
        services.record_guess(
            db_session,
            team.as_coordinator,
            participant,
            respondent="participant",
            guess="active_placebo",
            confidence=3,
            timepoint="primary_endpoint",
        )
    with pytest.raises(RuleViolation, match="recorded by that rater"):
        services.record_guess(
            db_session,
            team.as_coordinator,
            participant,
            respondent="rater",
            guess="active_placebo",
            confidence=3,
            timepoint="primary_endpoint",
        )

    admin = make_user(db_session, "admin", None)
    with pytest.raises(PasswordRefused):
        services.unblind_study(
            db_session,
            Actor.system(),
            admin=admin,
            admin_password=PASSWORD,
            statistician=statistician,
            statistician_password="not-it",
            reason="Database lock of 2027-06-30.",
        )
    assert queries.study_unblinded(db_session) is None
    assert queries.visible_arm(db_session, team.coordinator, participant.id) is None
    blinded = blinding_section(db_session, None)
    assert (blinded.guesses, blinded.indices) == (1, [])
    assert {r.arm for r in outcome_rows(db_session, None)} == {None}  # pooled
    services.unblind_study(
        db_session,
        Actor.system(),
        admin=admin,
        admin_password=PASSWORD,
        statistician=statistician,
        statistician_password=PASSWORD,
        reason="Database lock of 2027-06-30.",
    )
    arm = queries.visible_arm(db_session, team.coordinator, participant.id)
    assert arm in ARMS
    # After the unblinding: the index of the one guess (unsure: 0 correct, 0 incorrect, so 0),
    # and the outcome figures by arm (the other arm has no one assessed).
    (index,) = blinding_section(db_session, None).indices
    assert (index.arm, index.respondent, index.n, index.unsure, index.index) == (
        arm,
        "participant",
        1,
        1,
        0.0,
    )
    assert {r.arm for r in outcome_rows(db_session, None) if r.protocol == "mdma-mdd v2"} == {arm}
    with pytest.raises(Conflict, match="it is final"):
        services.unblind_study(
            db_session,
            Actor.system(),
            admin=admin,
            admin_password=PASSWORD,
            statistician=statistician,
            statistician_password=PASSWORD,
            reason="Again.",
        )
