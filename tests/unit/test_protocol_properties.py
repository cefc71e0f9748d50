"""Property tests: random sequences of decided transitions keep the state machine's invariants."""

from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.protocol import (
    CLOSED_STATES,
    HOLDABLE_STATES,
    TRANSITIONS,
    ChecklistOutcome,
    DosingSessionFacts,
    ParticipantFacts,
    PregnancyTestStatus,
    Role,
    State,
    WithdrawalCategory,
    allowed_transitions,
    decide,
    load_protocol_file,
    phase_of,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "mdma-at-v1.toml"
PROTOCOL = load_protocol_file(FIXTURE)
MAX_CYCLES = PROTOCOL.schedule.dosing_cycles


@dataclass(frozen=True)
class Step:
    """One attempted transition, with whatever the world looks like at that moment."""

    name: str
    role: Role
    override: bool
    reason: str | None
    category: WithdrawalCategory | None
    checklist_outcome: ChecklistOutcome
    checklist_signed: bool
    consent_recorded: bool
    preparation_sessions: int
    integration_sessions: int
    days_since_last_dosing: int | None
    pregnancy_test: PregnancyTestStatus
    open_serious_adverse_events: int
    dosing_session: DosingSessionFacts | None


sessions = st.builds(
    DosingSessionFacts,
    completed=st.booleans(),
    has_initial_dose=st.booleans(),
    baseline_vitals_present=st.booleans(),
    max_vitals_gap_minutes=st.none() | st.integers(0, 120),
    therapists_present=st.integers(0, 3),
    monitoring_hours=st.none() | st.floats(0, 12, allow_nan=False),
    overnight_stay_recorded=st.booleans(),
    unacknowledged_alerts=st.integers(0, 2),
)

# Biased towards the happy path so long runs reach integration, later cycles and completion.
steps = st.builds(
    Step,
    name=st.sampled_from(list(TRANSITIONS)),
    role=st.sampled_from([Role.COORDINATOR, *[Role.INVESTIGATOR] * 3, *Role]),
    override=st.booleans(),
    reason=st.sampled_from([None, "", "  ", *["Documented reason"] * 4]),
    category=st.sampled_from([None, *WithdrawalCategory]),
    checklist_outcome=st.sampled_from([ChecklistOutcome.ELIGIBLE, *ChecklistOutcome]),
    checklist_signed=st.booleans(),
    consent_recorded=st.booleans(),
    preparation_sessions=st.integers(0, 4),
    integration_sessions=st.integers(0, 4),
    days_since_last_dosing=st.none() | st.integers(0, 60),
    pregnancy_test=st.sampled_from(PregnancyTestStatus),
    open_serious_adverse_events=st.sampled_from([0, 0, 0, 1, 2]),
    dosing_session=st.none() | sessions,
)


def facts_for(state: State, held_from: State | None, cycle: int, step: Step) -> ParticipantFacts:
    return ParticipantFacts(
        state=state,
        held_from=held_from,
        cycle=cycle,
        checklist_outcome=step.checklist_outcome,
        checklist_signed=step.checklist_signed,
        consent_recorded=step.consent_recorded,
        completed_preparation_sessions=step.preparation_sessions,
        completed_integration_sessions=step.integration_sessions,
        days_since_last_dosing=step.days_since_last_dosing,
        pregnancy_test=step.pregnancy_test,
        open_serious_adverse_events=step.open_serious_adverse_events,
        dosing_session=step.dosing_session,
    )


def happy_facts(state: State, held_from: State | None, cycle: int) -> ParticipantFacts:
    """Facts under which every guard passes, so long sequences get past screening."""
    return ParticipantFacts(
        state=state,
        held_from=held_from,
        cycle=cycle,
        checklist_outcome=ChecklistOutcome.ELIGIBLE,
        checklist_signed=True,
        consent_recorded=True,
        completed_preparation_sessions=3,
        completed_integration_sessions=3,
        days_since_last_dosing=28,
        pregnancy_test=PregnancyTestStatus.NEGATIVE_WITHIN_WINDOW,
        dosing_session=DosingSessionFacts(
            completed=True,
            has_initial_dose=True,
            baseline_vitals_present=True,
            max_vitals_gap_minutes=45,
            therapists_present=2,
            monitoring_hours=9,
            overnight_stay_recorded=True,
            unacknowledged_alerts=0,
        ),
    )


# Leaving for a closed state ends a sequence, so those transitions are drawn less often.
WEIGHTED_NAMES = [
    name
    for name in TRANSITIONS
    for _ in range(1 if name in {"fail_screening", "withdraw", "place_on_hold"} else 4)
]


@settings(max_examples=100, deadline=None, database=None)
@given(st.data())
def test_random_sequences_keep_the_invariants(data: st.DataObject) -> None:
    state: State = State.SCREENING
    held_from: State | None = None
    cycle = 0
    for _ in range(data.draw(st.integers(1, 50), label="length")):
        candidates = [n for n in WEIGHTED_NAMES if state in TRANSITIONS[n].sources]
        # Mostly a transition that could apply; sometimes any, to probe the refusals.
        probe_refusals = data.draw(st.integers(0, 9), label="probe") == 0
        pool = WEIGHTED_NAMES if probe_refusals or not candidates else candidates
        step = data.draw(steps, label="step")
        name = data.draw(st.sampled_from(pool), label="transition")
        happy = data.draw(st.integers(0, 3), label="happy") > 0
        facts = (
            happy_facts(state, held_from, cycle)
            if happy
            else facts_for(state, held_from, cycle, step)
        )
        decision = decide(
            name,
            facts,
            step.role,
            PROTOCOL,
            reason=step.reason,
            override=step.override,
            withdrawal_category=step.category,
        )
        row = TRANSITIONS[name]
        if state in CLOSED_STATES:
            assert decision.allowed is False
        if not decision.allowed:
            assert decision.failures
            continue
        # Only a permitted role, from a source state, ever gets through.
        assert step.role in row.roles
        assert state in row.sources
        if decision.overridden:
            assert step.role is Role.INVESTIGATOR
            assert step.override is True
            assert step.reason is not None and step.reason.strip()
            assert all(failure.overridable for failure in decision.overridden)
        assert (decision.new_cycle == cycle + 1) is (name == "start_dosing")
        assert decision.new_cycle in (cycle, cycle + 1)

        held_from = state if decision.target is State.ON_HOLD else None
        state, cycle = decision.target, decision.new_cycle

        assert 0 <= cycle <= MAX_CYCLES
        if state is State.ON_HOLD:
            assert held_from in HOLDABLE_STATES
        if state in (State.DOSING, State.INTEGRATION, State.COMPLETED):
            assert cycle >= 1
        if state is State.COMPLETED:
            assert cycle == MAX_CYCLES
        phase_of(state, held_from)


@settings(max_examples=200, deadline=None, database=None)
@given(
    state=st.sampled_from(State),
    held_from=st.sampled_from(sorted(HOLDABLE_STATES)),
    cycle=st.integers(0, MAX_CYCLES),
    step=steps,
)
def test_allowed_transitions_agrees_with_decide(
    state: State, held_from: State, cycle: int, step: Step
) -> None:
    facts = facts_for(state, held_from if state is State.ON_HOLD else None, cycle, step)
    options = allowed_transitions(facts, step.role, PROTOCOL)
    assert [o.name for o in options] == [
        n for n, row in TRANSITIONS.items() if state in row.sources
    ]
    for option in options:
        decision = decide(
            option.name,
            facts,
            step.role,
            PROTOCOL,
            reason="Documented reason",
            override=False,
            withdrawal_category=WithdrawalCategory.OTHER,
        )
        assert option.allowed is decision.allowed
        assert option.reasons == decision.reasons
        assert option.target is decision.target
        if option.can_override:
            overridden = decide(
                option.name,
                facts,
                step.role,
                PROTOCOL,
                reason="Documented reason",
                override=True,
                withdrawal_category=WithdrawalCategory.OTHER,
            )
            assert overridden.allowed is True
            assert overridden.overridden
