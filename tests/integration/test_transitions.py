"""Every transition reachable so far, allowed and refused, through the one service."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.factories import actor, all_no, make_eligible, make_participant, make_user
from tracker.audit.models import AuditEvent
from tracker.audit.services import verify
from tracker.errors import Conflict, InvalidInput, RuleViolation
from tracker.participants import queries
from tracker.participants.models import Participant, TransitionEvent
from tracker.participants.services import record_checklist_answers
from tracker.participants.transitions import apply_transition, options_for, place_on_automatic_hold


@pytest.fixture
def team(db_session: Session):  # type: ignore[no-untyped-def]
    return make_user(db_session, "coordinator", "S01"), make_user(db_session, "investigator", "S01")


def _apply(session: Session, user, participant, name: str, **kwargs):  # type: ignore[no-untyped-def]
    return apply_transition(
        session, actor(user), participant, name, expected_version=participant.version, **kwargs
    )


def test_confirm_eligibility_lists_every_failing_guard(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _ = team
    participant = make_participant(db_session, coordinator)
    with pytest.raises(RuleViolation) as error:
        _apply(db_session, coordinator, participant, "confirm_eligibility")
    details = error.value.details
    assert len(details) == 3
    assert any("checklist" in d.lower() and "eligible" in d.lower() for d in details)
    assert any("sign" in d.lower() for d in details)
    assert any("consent" in d.lower() for d in details)
    assert participant.state == "screening" and participant.version == 1
    assert queries.transitions_of(db_session, participant.id) == []


def test_confirm_eligibility_applies_with_history_and_audit(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator = team
    participant = make_participant(db_session, coordinator)
    make_eligible(db_session, coordinator, investigator, participant)
    applied = _apply(db_session, coordinator, participant, "confirm_eligibility")
    assert (
        participant.state == "preparation" and participant.version == 2 and participant.cycle == 0
    )
    event = applied.event
    assert (event.from_state, event.to_state, event.actor, event.role) == (
        "screening",
        "preparation",
        coordinator.username,
        "coordinator",
    )
    assert {r["check"] for r in event.guard_results} >= {
        "checklist_eligible",
        "checklist_signed",
        "consent_recorded",
    }
    assert all(r["outcome"] == "passed" for r in event.guard_results)
    audit = db_session.scalar(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert audit.action == "participant.confirm_eligibility"
    assert audit.old_values == {"state": "screening", "cycle": 0, "version": 1}
    assert audit.new_values["state"] == "preparation"
    assert verify(db_session).ok


def test_an_ineligible_participant_cannot_be_confirmed_and_is_screen_failed(
    db_session: Session, team
) -> None:  # type: ignore[no-untyped-def]
    coordinator, _ = team
    participant = make_participant(db_session, coordinator)
    record_checklist_answers(
        db_session, actor(coordinator), participant, all_no(bipolar_i="diagnosed 2015")
    )
    options = {o.name: o for o in options_for(db_session, participant, "coordinator")}
    assert not options["confirm_eligibility"].allowed
    assert any("Bipolar I" in r for r in options["confirm_eligibility"].reasons)
    assert options["fail_screening"].allowed
    with pytest.raises(RuleViolation, match="reason"):
        _apply(db_session, coordinator, participant, "fail_screening")
    _apply(db_session, coordinator, participant, "fail_screening", reason="Bipolar I disorder")
    assert participant.state == "screen_failed"


def test_wrong_role_is_refused(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _ = team
    therapist = make_user(db_session, "therapist", "S01")
    participant = make_participant(db_session, coordinator, therapists=[therapist.username])
    with pytest.raises(RuleViolation) as error:
        _apply(db_session, therapist, participant, "fail_screening", reason="x")
    assert any("therapist" in d for d in error.value.details)


def test_hold_and_release_return_to_the_state_held_from(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator = team
    participant = make_participant(db_session, coordinator)
    make_eligible(db_session, coordinator, investigator, participant)
    _apply(db_session, coordinator, participant, "confirm_eligibility")
    _apply(db_session, coordinator, participant, "place_on_hold", reason="travel")
    assert (participant.state, participant.held_from) == ("on_hold", "preparation")
    with pytest.raises(RuleViolation):
        _apply(db_session, coordinator, participant, "release_hold", reason="back")
    _apply(db_session, investigator, participant, "release_hold", reason="back from travel")
    assert (participant.state, participant.held_from, participant.version) == (
        "preparation",
        None,
        4,
    )


def test_start_dosing_is_refused_without_preparation_sessions(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator = team
    participant = make_participant(db_session, coordinator)
    make_eligible(db_session, coordinator, investigator, participant)
    _apply(db_session, coordinator, participant, "confirm_eligibility")
    with pytest.raises(RuleViolation) as error:
        _apply(db_session, coordinator, participant, "start_dosing")
    assert any("preparation session" in d for d in error.value.details)
    # Not overridable, even by an investigator with a reason.
    with pytest.raises(RuleViolation):
        _apply(
            db_session, investigator, participant, "start_dosing", override=True, reason="urgent"
        )
    assert participant.state == "preparation" and participant.cycle == 0


def test_withdraw_needs_a_category_and_a_reason_and_closes(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, investigator = team
    participant = make_participant(db_session, coordinator)
    with pytest.raises(RuleViolation) as error:
        _apply(db_session, coordinator, participant, "withdraw")
    assert len(error.value.details) == 2
    with pytest.raises(InvalidInput):
        _apply(
            db_session,
            coordinator,
            participant,
            "withdraw",
            reason="x",
            withdrawal_category="bored",
        )
    _apply(
        db_session,
        coordinator,
        participant,
        "withdraw",
        reason="moved away",
        withdrawal_category="participant_decision",
    )
    assert (
        participant.state == "withdrawn"
        and participant.withdrawal_category == "participant_decision"
    )
    for name in ("withdraw", "place_on_hold", "confirm_eligibility"):
        with pytest.raises(RuleViolation):
            _apply(
                db_session, investigator, participant, name, reason="x", withdrawal_category="other"
            )
    assert options_for(db_session, participant, "investigator") == []


def test_a_stale_version_is_a_conflict_that_changes_nothing(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _ = team
    participant = make_participant(db_session, coordinator)
    seen = participant.version
    _apply(db_session, coordinator, participant, "place_on_hold", reason="first")
    before = db_session.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    with pytest.raises(Conflict):
        apply_transition(
            db_session,
            actor(coordinator),
            participant,
            "place_on_hold",
            expected_version=seen,
            reason="x",
        )
    assert db_session.scalar(sa.select(sa.func.max(AuditEvent.seq))) == before
    assert len(queries.transitions_of(db_session, participant.id)) == 1


def test_the_database_update_is_version_checked(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    """Another writer bumps the row between our read and our write: the UPDATE matches nothing."""
    coordinator, _ = team
    participant = make_participant(db_session, coordinator)
    db_session.execute(
        sa.update(Participant)
        .where(Participant.id == participant.id)
        .values(version=2)
        .execution_options(synchronize_session=False)
    )
    assert participant.version == 1
    with pytest.raises(Conflict, match="a moment ago"):
        # The in-memory object still says version 1, as a concurrent reader would.
        apply_transition(
            db_session,
            actor(coordinator),
            participant,
            "place_on_hold",
            expected_version=1,
            reason="x",
        )


def test_unknown_transition_is_invalid_input(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _ = team
    participant = make_participant(db_session, coordinator)
    with pytest.raises(InvalidInput, match="Unknown transition"):
        _apply(db_session, coordinator, participant, "teleport")


def test_automatic_hold_hook(db_session: Session, team) -> None:  # type: ignore[no-untyped-def]
    coordinator, _ = team
    therapist = make_user(db_session, "therapist", "S01")
    participant = make_participant(db_session, coordinator, therapists=[therapist.username])
    assert place_on_automatic_hold(
        db_session, actor(therapist), participant, "serious adverse event AE-1"
    )
    assert participant.state == "on_hold" and participant.held_from == "screening"
    event = db_session.scalar(
        sa.select(TransitionEvent).where(TransitionEvent.participant_id == participant.id)
    )
    assert event.automatic and event.reason.startswith("Automatic safety hold")
    # The audit trail names who acted, in the role they hold.
    assert (event.actor, event.role) == (therapist.username, "therapist")
    assert not place_on_automatic_hold(db_session, actor(therapist), participant, "again")
