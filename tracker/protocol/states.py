"""Participant states, the phases they belong to, and withdrawal categories (SPEC §3)."""

from enum import StrEnum


class State(StrEnum):
    """Where a participant stands in the protocol."""

    SCREENING = "screening"
    PREPARATION = "preparation"
    DOSING = "dosing"
    INTEGRATION = "integration"
    ON_HOLD = "on_hold"
    # After treatment, for a protocol with follow-up timepoints (SPEC §10).
    FOLLOW_UP = "follow_up"
    COMPLETED = "completed"
    SCREEN_FAILED = "screen_failed"
    WITHDRAWN = "withdrawn"


class Phase(StrEnum):
    """The protocol phase a state belongs to, used for dashboards and reports."""

    SCREENING_PREPARATION = "screening_preparation"
    DOSING = "dosing"
    INTEGRATION = "integration"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"


class WithdrawalCategory(StrEnum):
    """Why a participant left the study; recorded with every withdrawal."""

    PARTICIPANT_DECISION = "participant_decision"
    INVESTIGATOR_DECISION = "investigator_decision"
    ADVERSE_EVENT = "adverse_event"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"
    OTHER = "other"


CLOSED_STATES: frozenset[State] = frozenset({State.COMPLETED, State.SCREEN_FAILED, State.WITHDRAWN})

# States a participant can be held from: every open state except the hold itself.
HOLDABLE_STATES: frozenset[State] = frozenset(
    {State.SCREENING, State.PREPARATION, State.DOSING, State.INTEGRATION}
)

_PHASE_OF_STATE: dict[State, Phase] = {
    State.SCREENING: Phase.SCREENING_PREPARATION,
    State.PREPARATION: Phase.SCREENING_PREPARATION,
    State.DOSING: Phase.DOSING,
    State.INTEGRATION: Phase.INTEGRATION,
    State.FOLLOW_UP: Phase.FOLLOW_UP,
    State.COMPLETED: Phase.CLOSED,
    State.SCREEN_FAILED: Phase.CLOSED,
    State.WITHDRAWN: Phase.CLOSED,
}


def phase_of(state: State, held_from: State | None = None) -> Phase:
    """Return the phase of ``state``; a hold belongs to the phase of the state it was held from.

    Raises ``ValueError`` for ``on_hold`` without a holdable ``held_from``, because a hold that
    does not remember where it came from cannot be released correctly.
    """
    if state is State.ON_HOLD:
        if held_from is None or held_from not in HOLDABLE_STATES:
            raise ValueError(f"on_hold needs the state it was held from, got {held_from!r}")
        return _PHASE_OF_STATE[held_from]
    return _PHASE_OF_STATE[state]
