"""The transition table itself (SPEC §3), roles, states and phases."""

from collections import deque

import pytest

from tracker.protocol import (
    CLOSED_STATES,
    HOLDABLE_STATES,
    TRANSITIONS,
    Phase,
    Role,
    State,
    WithdrawalCategory,
    can_place_on_hold,
    phase_of,
)

COORDINATION = {Role.COORDINATOR, Role.INVESTIGATOR}
OPEN_STATES = set(State) - CLOSED_STATES


def targets(name: str) -> set[State]:
    """Where a transition can lead; release_hold leads back to any state one can be held from."""
    row = TRANSITIONS[name]
    found = set(HOLDABLE_STATES) if row.target is None else {row.target}
    # complete_protocol leads to follow-up instead under a protocol that follows up.
    return found | ({row.target_with_follow_up} if row.target_with_follow_up else set())


def test_enumeration_values_are_the_spec_strings() -> None:
    assert [str(r) for r in Role] == [
        "coordinator",
        "therapist",
        "investigator",
        "auditor",
        "admin",
        "rater",
        "pharmacist",
        "statistician",
    ]
    assert [str(s) for s in State] == [
        "screening",
        "preparation",
        "dosing",
        "integration",
        "on_hold",
        "follow_up",
        "completed",
        "screen_failed",
        "withdrawn",
    ]
    assert [str(p) for p in Phase] == [
        "screening_preparation",
        "dosing",
        "integration",
        "follow_up",
        "closed",
    ]
    assert [str(c) for c in WithdrawalCategory] == [
        "participant_decision",
        "investigator_decision",
        "adverse_event",
        "lost_to_follow_up",
        "other",
    ]
    assert frozenset({State.COMPLETED, State.SCREEN_FAILED, State.WITHDRAWN}) == CLOSED_STATES


@pytest.mark.parametrize(
    ("name", "sources", "target", "roles", "reason_required"),
    [
        ("confirm_eligibility", {State.SCREENING}, State.PREPARATION, COORDINATION, False),
        ("fail_screening", {State.SCREENING}, State.SCREEN_FAILED, COORDINATION, True),
        (
            "start_dosing",
            {State.PREPARATION, State.INTEGRATION},
            State.DOSING,
            COORDINATION,
            False,
        ),
        (
            "complete_dosing",
            {State.DOSING},
            State.INTEGRATION,
            COORDINATION | {Role.THERAPIST},
            False,
        ),
        ("complete_protocol", {State.INTEGRATION}, State.COMPLETED, COORDINATION, False),
        (
            "place_on_hold",
            {State.SCREENING, State.PREPARATION, State.DOSING, State.INTEGRATION},
            State.ON_HOLD,
            COORDINATION | {Role.THERAPIST},
            True,
        ),
        ("complete_follow_up", {State.FOLLOW_UP}, State.COMPLETED, COORDINATION, False),
        (
            "discontinue_treatment",
            {State.PREPARATION, State.DOSING, State.INTEGRATION, State.ON_HOLD},
            State.FOLLOW_UP,
            COORDINATION,
            True,
        ),
        ("release_hold", {State.ON_HOLD}, None, {Role.INVESTIGATOR}, True),
        ("withdraw", OPEN_STATES, State.WITHDRAWN, COORDINATION, True),
    ],
)
def test_each_row_matches_spec_section_3(
    name: str,
    sources: set[State],
    target: State | None,
    roles: set[Role],
    reason_required: bool,
) -> None:
    row = TRANSITIONS[name]
    assert row.name == name
    assert row.sources == frozenset(sources)
    assert row.target == target
    assert row.roles == frozenset(roles)
    assert row.reason_required is reason_required
    assert row.withdrawal_category_required is (name == "withdraw")
    assert row.starts_cycle is (name == "start_dosing")


def test_the_table_has_exactly_the_spec_transitions_in_order() -> None:
    assert list(TRANSITIONS) == [
        "confirm_eligibility",
        "fail_screening",
        "start_dosing",
        "complete_dosing",
        "complete_protocol",
        "complete_follow_up",
        "discontinue_treatment",
        "place_on_hold",
        "release_hold",
        "withdraw",
    ]


def test_every_state_is_reachable_from_screening() -> None:
    reached = {State.SCREENING}
    queue = deque([State.SCREENING])
    while queue:
        state = queue.popleft()
        for name, row in TRANSITIONS.items():
            if state in row.sources:
                for target in targets(name) - reached:
                    reached.add(target)
                    queue.append(target)
    assert reached == set(State)


def test_no_open_state_is_a_dead_end() -> None:
    for state in OPEN_STATES:
        leaving = [n for n, row in TRANSITIONS.items() if state in row.sources]
        assert leaving, f"{state} has no way out"
        assert any(targets(name) != {state} for name in leaving)


def test_nothing_leaves_a_closed_state() -> None:
    for row in TRANSITIONS.values():
        assert not row.sources & CLOSED_STATES, row.name


def test_release_hold_is_the_only_transition_without_a_fixed_target() -> None:
    assert [n for n, row in TRANSITIONS.items() if row.target is None] == ["release_hold"]


def test_every_transition_has_a_role_and_auditor_and_admin_have_none() -> None:
    for row in TRANSITIONS.values():
        assert row.roles, row.name
        assert Role.AUDITOR not in row.roles
        assert Role.ADMIN not in row.roles


def test_an_investigator_may_apply_every_transition() -> None:
    assert all(Role.INVESTIGATOR in row.roles for row in TRANSITIONS.values())


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (State.SCREENING, True),
        (State.PREPARATION, True),
        (State.DOSING, True),
        (State.INTEGRATION, True),
        (State.ON_HOLD, False),
        (State.COMPLETED, False),
        (State.SCREEN_FAILED, False),
        (State.WITHDRAWN, False),
    ],
)
def test_can_place_on_hold(state: State, expected: bool) -> None:
    assert can_place_on_hold(state) is expected


@pytest.mark.parametrize(
    ("state", "held_from", "phase"),
    [
        (State.SCREENING, None, Phase.SCREENING_PREPARATION),
        (State.PREPARATION, None, Phase.SCREENING_PREPARATION),
        (State.DOSING, None, Phase.DOSING),
        (State.INTEGRATION, None, Phase.INTEGRATION),
        (State.COMPLETED, None, Phase.CLOSED),
        (State.SCREEN_FAILED, None, Phase.CLOSED),
        (State.WITHDRAWN, None, Phase.CLOSED),
        (State.ON_HOLD, State.SCREENING, Phase.SCREENING_PREPARATION),
        (State.ON_HOLD, State.PREPARATION, Phase.SCREENING_PREPARATION),
        (State.ON_HOLD, State.DOSING, Phase.DOSING),
        (State.ON_HOLD, State.INTEGRATION, Phase.INTEGRATION),
    ],
)
def test_phase_of(state: State, held_from: State | None, phase: Phase) -> None:
    assert phase_of(state, held_from) is phase


@pytest.mark.parametrize("held_from", [None, State.ON_HOLD, State.COMPLETED])
def test_a_hold_without_a_holdable_origin_has_no_phase(held_from: State | None) -> None:
    with pytest.raises(ValueError, match="on_hold needs the state it was held from"):
        phase_of(State.ON_HOLD, held_from)


def test_every_phase_and_state_has_its_place_on_the_pages() -> None:
    # A state or phase added to the core without its label broke the participant page once.
    from tracker.participants.presenters import PHASE_STATES, PHASE_TITLES

    assert set(PHASE_TITLES) == set(Phase)
    shown = {state for states in PHASE_STATES.values() for state in states}
    assert shown == set(State) - {State.ON_HOLD}  # holds are counted apart
