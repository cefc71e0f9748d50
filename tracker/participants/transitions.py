"""Applying transitions: the facts snapshot, the core's decision, a version-checked update,
the transition event, deviations and the audit event, in the caller's one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.db import utcnow
from tracker.errors import Conflict, InvalidInput, RuleViolation
from tracker.outcomes.queries import open_follow_up
from tracker.participants import queries
from tracker.participants.facts import SessionRecords, session_facts
from tracker.participants.models import Participant, ProtocolDeviation, TransitionEvent
from tracker.participants.recording import require_version
from tracker.participants.services import ChecklistState, checklist_state
from tracker.protocol import (
    TRANSITIONS,
    ParticipantFacts,
    Role,
    State,
    WithdrawalCategory,
    allowed_transitions,
    can_place_on_hold,
    decide,
)
from tracker.protocol.transitions import Decision, TransitionOption
from tracker.randomisation.queries import is_randomised
from tracker.study.services import definition_of

MAX_REASON = 2000


def participant_facts(
    db: Session,
    participant: Participant,
    *,
    checklist: ChecklistState | None = None,
    consent_recorded: bool | None = None,
    records: SessionRecords | None = None,
) -> ParticipantFacts:
    """The snapshot the guards decide on. A page that has already read the checklist, the
    consents or the session records hands them in; anything missing is read here."""
    if checklist is None:
        checklist = checklist_state(db, participant)
    if consent_recorded is None:
        consent_recorded = bool(queries.consents_of(db, participant.id))
    sessions = session_facts(db, participant, checklist.definition, records)
    return ParticipantFacts(
        state=State(participant.state),
        held_from=State(participant.held_from) if participant.held_from else None,
        cycle=participant.cycle,
        checklist_outcome=checklist.evaluation.outcome,
        checklist_signed=checklist.signature_valid,
        checklist_reasons=checklist.evaluation.reasons,
        consent_recorded=consent_recorded,
        completed_preparation_sessions=sessions.completed_preparation_sessions,
        completed_integration_sessions=sessions.completed_integration_sessions,
        days_since_last_dosing=sessions.days_since_last_dosing,
        pregnancy_test=sessions.pregnancy_test,
        open_serious_adverse_events=sessions.open_serious_adverse_events,
        dosing_session=sessions.dosing_session,
        follow_up_open=(
            open_follow_up(db, participant, checklist.definition, utcnow().date())
            if participant.state == State.FOLLOW_UP
            else ()
        ),
        randomised=(
            is_randomised(db, participant.id)
            if checklist.definition.randomisation is not None
            and participant.state == State.PREPARATION
            else False
        ),
    )


def options_for(
    db: Session,
    participant: Participant,
    role: str,
    *,
    checklist: ChecklistState | None = None,
    consent_recorded: bool | None = None,
    records: SessionRecords | None = None,
) -> list[TransitionOption]:
    """Every transition from the current state, allowed or with every reason why not."""
    facts = participant_facts(
        db,
        participant,
        checklist=checklist,
        consent_recorded=consent_recorded,
        records=records,
    )
    return allowed_transitions(facts, Role(role), definition_of(participant.protocol_version))


@dataclass(frozen=True)
class AppliedTransition:
    participant: Participant
    event: TransitionEvent
    decision: Decision


def _parse_category(raw: str | None) -> WithdrawalCategory | None:
    if raw in (None, ""):
        return None
    try:
        return WithdrawalCategory(raw)
    except ValueError:
        known = ", ".join(c.value for c in WithdrawalCategory)
        raise InvalidInput(f"Unknown withdrawal category {raw!r}; choose one of {known}.") from None


def apply_transition(
    db: Session,
    actor: Actor,
    participant: Participant,
    name: str,
    *,
    expected_version: int,
    reason: str | None = None,
    override: bool = False,
    withdrawal_category: str | None = None,
    automatic: bool = False,
) -> AppliedTransition:
    """Apply transition ``name`` decided on ``expected_version`` of the participant.

    A refusal raises RuleViolation (422) listing every failing guard; a participant changed
    since ``expected_version`` raises Conflict (409); either way nothing is written.
    """
    if name not in TRANSITIONS:
        raise InvalidInput(f"Unknown transition {name!r}; known: {', '.join(TRANSITIONS)}.")
    reason = (reason or "").strip() or None
    if reason and len(reason) > MAX_REASON:
        raise InvalidInput(f"The reason is longer than {MAX_REASON} characters.")
    category = _parse_category(withdrawal_category)
    require_version(participant, expected_version)
    protocol = definition_of(participant.protocol_version)
    facts = participant_facts(db, participant)
    decision = decide(
        name,
        facts,
        Role(actor.role or ""),
        protocol,
        reason=reason,
        override=override,
        withdrawal_category=category,
    )
    if not decision.allowed:
        raise RuleViolation(
            f"{name.replace('_', ' ').capitalize()} is refused for {participant.study_id}: "
            + " ".join(decision.reasons),
            list(decision.reasons),
        )

    from_state, cycle_before = participant.state, participant.cycle
    held_from = participant.state if decision.target is State.ON_HOLD else None
    now = utcnow()
    # The version check is in the UPDATE itself: with concurrent writers exactly one matches.
    result = db.execute(
        sa.update(Participant)
        .where(Participant.id == participant.id, Participant.version == expected_version)
        .values(
            state=decision.target.value,
            held_from=held_from,
            cycle=decision.new_cycle,
            withdrawal_category=category.value if category else participant.withdrawal_category,
            version=expected_version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"{participant.study_id} was changed by someone else a moment ago; "
            "reload and decide again.",
            [{"expected_version": expected_version}],
        )
    db.refresh(participant)
    event = TransitionEvent(
        participant_id=participant.id,
        transition=name,
        from_state=from_state,
        to_state=participant.state,
        cycle_before=cycle_before,
        cycle_after=participant.cycle,
        version_after=participant.version,
        actor_id=actor.user_id,
        actor=actor.username,
        role=actor.role,
        reason=reason,
        withdrawal_category=category.value if category else None,
        override=bool(decision.overridden),
        automatic=automatic,
        guard_results=decision.guard_results(),
        occurred_at=now,
    )
    db.add(event)
    db.flush()
    for failure in decision.overridden:
        db.add(
            ProtocolDeviation(
                participant_id=participant.id,
                transition_event_id=event.id,
                guard_code=str(failure.code),
                description=failure.message,
                reason=reason or "",
                approved_by_id=actor.user_id,
                occurred_at=now,
            )
        )
    db.flush()
    record_event(
        db,
        actor,
        f"participant.{name}",
        "participant",
        participant.study_id,
        old={"state": from_state, "cycle": cycle_before, "version": expected_version},
        new={
            "state": participant.state,
            "cycle": participant.cycle,
            "version": participant.version,
            "overridden": [str(f.code) for f in decision.overridden],
        },
        reason=reason,
    )
    return AppliedTransition(participant=participant, event=event, decision=decision)


def place_on_automatic_hold(
    db: Session, actor: Actor, participant: Participant, reason: str
) -> bool:
    """The hook for automatic safety holds (a serious adverse event, a positive suicidality
    screen): called in the transaction that records the finding. Returns False when the
    participant cannot be held (already on hold, or closed); the finding is recorded anyway."""
    if not can_place_on_hold(State(participant.state)):
        return False
    # Every role that records findings may place a hold: the hold is the recorder's own act,
    # marked automatic, so the audit trail names who and in which role.
    apply_transition(
        db,
        actor,
        participant,
        "place_on_hold",
        expected_version=participant.version,
        reason=f"Automatic safety hold: {reason}",
        automatic=True,
    )
    return True
