"""Deciding transitions: every allowed and refused path, all failures at once, and overrides."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tracker.protocol import (
    TRANSITIONS,
    ChecklistOutcome,
    Decision,
    DosingSessionFacts,
    ParticipantFacts,
    PregnancyTestStatus,
    Role,
    State,
    UnknownTransitionError,
    WithdrawalCategory,
    allowed_transitions,
    decide,
    load_protocol_file,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "mdma-at-v1.toml"
PROTOCOL = load_protocol_file(FIXTURE)

SCREENED = ParticipantFacts(
    state=State.SCREENING,
    checklist_outcome=ChecklistOutcome.ELIGIBLE,
    checklist_signed=True,
    consent_recorded=True,
)
PREPARED = replace(SCREENED, state=State.PREPARATION, completed_preparation_sessions=3)
GOOD_SESSION = DosingSessionFacts(
    completed=True,
    has_initial_dose=True,
    baseline_vitals_present=True,
    max_vitals_gap_minutes=55,
    therapists_present=2,
    monitoring_hours=8.5,
    overnight_stay_recorded=True,
    unacknowledged_alerts=0,
)
DOSED = replace(PREPARED, state=State.DOSING, cycle=1, dosing_session=GOOD_SESSION)
INTEGRATED = replace(
    PREPARED,
    state=State.INTEGRATION,
    cycle=1,
    completed_integration_sessions=3,
    days_since_last_dosing=28,
)

INTERVAL_SHORT = (
    "The next dosing must be 21 to 42 days after the last one; only 10 days have passed."
)
INTEGRATION_SHORT = "3 completed integration sessions of cycle 1 are required; 1 recorded."


def codes(decision: Decision) -> list[str]:
    return [failure.code for failure in decision.failures]


def run(
    name: str,
    facts: ParticipantFacts,
    role: Role = Role.COORDINATOR,
    *,
    reason: str | None = None,
    override: bool = False,
    withdrawal_category: WithdrawalCategory | None = None,
) -> Decision:
    return decide(
        name,
        facts,
        role,
        PROTOCOL,
        reason=reason,
        override=override,
        withdrawal_category=withdrawal_category,
    )


# --- confirm_eligibility ------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.INVESTIGATOR])
def test_confirm_eligibility_allowed(role: Role) -> None:
    decision = run("confirm_eligibility", SCREENED, role)
    assert decision.allowed is True
    assert decision.failures == ()
    assert (decision.source, decision.target, decision.new_cycle) == (
        State.SCREENING,
        State.PREPARATION,
        0,
    )


def test_confirm_eligibility_reports_checklist_signature_and_consent_together() -> None:
    facts = ParticipantFacts(
        state=State.SCREENING,
        checklist_outcome=ChecklistOutcome.INCOMPLETE,
        checklist_reasons=("Unanswered: Bipolar II disorder", "Unanswered: Hepatic impairment"),
    )
    decision = run("confirm_eligibility", facts, Role.THERAPIST)
    assert decision.allowed is False
    assert decision.reasons == (
        "A therapist may not confirm eligibility; only a coordinator or an investigator may.",
        "The contraindication checklist must be eligible; it is incomplete: "
        "Unanswered: Bipolar II disorder; Unanswered: Hepatic impairment.",
        "An investigator must sign the contraindication checklist; it is not signed, or a later "
        "change voided the signature.",
        "Informed consent must be recorded; none is recorded.",
    )


def test_an_ineligible_checklist_without_reasons_says_so() -> None:
    facts = replace(SCREENED, checklist_outcome=ChecklistOutcome.INELIGIBLE)
    decision = run("confirm_eligibility", facts)
    assert decision.reasons == (
        "The contraindication checklist must be eligible; it is ineligible.",
    )


def test_eligibility_and_consent_are_never_overridden() -> None:
    facts = replace(SCREENED, checklist_outcome=ChecklistOutcome.INELIGIBLE, consent_recorded=False)
    decision = run("confirm_eligibility", facts, Role.INVESTIGATOR, reason="Urgent", override=True)
    assert decision.allowed is False
    assert codes(decision) == ["checklist_not_eligible", "consent_missing"]
    assert decision.overridden == ()
    assert all(not failure.overridable for failure in decision.failures)


# --- fail_screening -----------------------------------------------------------------------


def test_fail_screening_needs_a_reason() -> None:
    assert run("fail_screening", SCREENED).reasons == ("A reason is required to fail screening.",)
    assert run("fail_screening", SCREENED, reason="   ").allowed is False
    decision = run("fail_screening", SCREENED, reason="Exclusion: bipolar I")
    assert decision.allowed is True
    assert decision.target is State.SCREEN_FAILED


def test_fail_screening_only_from_screening() -> None:
    decision = run("fail_screening", PREPARED, reason="Late finding")
    assert decision.reasons == (
        "To fail screening the participant must be in screening; they are in preparation.",
    )


# --- start_dosing -------------------------------------------------------------------------


def test_start_dosing_first_cycle_allowed() -> None:
    decision = run("start_dosing", PREPARED)
    assert decision.allowed is True
    assert (decision.target, decision.cycle, decision.new_cycle) == (State.DOSING, 0, 1)


def test_start_dosing_first_cycle_needs_preparation_sessions() -> None:
    decision = run("start_dosing", replace(PREPARED, completed_preparation_sessions=1))
    assert decision.reasons == ("3 completed preparation sessions are required; 1 recorded.",)
    assert decision.failures[0].overridable is False


def test_start_dosing_later_cycle_allowed_at_both_ends_of_the_window() -> None:
    for days in (21, 42):
        decision = run("start_dosing", replace(INTEGRATED, days_since_last_dosing=days))
        assert decision.allowed is True, decision.reasons
        assert (decision.source, decision.new_cycle) == (State.INTEGRATION, 2)


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (1, "The next dosing must be 21 to 42 days after the last one; only 1 day has passed."),
        (20, "The next dosing must be 21 to 42 days after the last one; only 20 days have passed."),
        (43, "The next dosing must be 21 to 42 days after the last one; 43 days have passed."),
        (
            None,
            "The next dosing must be 21 to 42 days after the last one; "
            "the date of the last dosing session is not recorded.",
        ),
    ],
)
def test_start_dosing_outside_the_interval_window(days: int | None, message: str) -> None:
    decision = run("start_dosing", replace(INTEGRATED, days_since_last_dosing=days))
    assert decision.reasons == (message,)
    assert decision.failures[0].code == "dosing_interval"
    assert decision.failures[0].overridable is True


def test_start_dosing_later_cycle_needs_integration_sessions() -> None:
    decision = run("start_dosing", replace(INTEGRATED, completed_integration_sessions=1))
    assert decision.reasons == (INTEGRATION_SHORT,)


def test_start_dosing_after_the_last_cycle_is_refused() -> None:
    decision = run("start_dosing", replace(INTEGRATED, cycle=3))
    assert decision.reasons == ("The protocol allows 3 dosing cycles; cycle 3 was the last.",)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            PregnancyTestStatus.MISSING_OR_STALE,
            "A negative pregnancy test within 48 h before dosing is required; "
            "none is recorded in that window.",
        ),
        (PregnancyTestStatus.POSITIVE, "The pregnancy test is positive; dosing is not allowed."),
    ],
)
def test_start_dosing_needs_a_negative_pregnancy_test(
    status: PregnancyTestStatus, message: str
) -> None:
    assert run("start_dosing", replace(PREPARED, pregnancy_test=status)).reasons == (message,)


def test_start_dosing_with_a_negative_or_not_applicable_pregnancy_test() -> None:
    for status in (PregnancyTestStatus.NEGATIVE_WITHIN_WINDOW, PregnancyTestStatus.NOT_APPLICABLE):
        assert run("start_dosing", replace(PREPARED, pregnancy_test=status)).allowed is True


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (1, "1 serious adverse event is open; dosing cannot start until it is resolved."),
        (2, "2 serious adverse events are open; dosing cannot start until they are resolved."),
    ],
)
def test_start_dosing_with_an_open_serious_adverse_event(count: int, message: str) -> None:
    facts = replace(PREPARED, open_serious_adverse_events=count)
    assert run("start_dosing", facts).reasons == (message,)
    overridden = run("start_dosing", facts, Role.INVESTIGATOR, reason="Judged safe", override=True)
    assert overridden.allowed is False
    assert overridden.reasons == (message,)


def test_start_dosing_reports_every_failing_guard_together() -> None:
    facts = replace(
        INTEGRATED,
        cycle=3,
        completed_integration_sessions=0,
        days_since_last_dosing=60,
        pregnancy_test=PregnancyTestStatus.POSITIVE,
        open_serious_adverse_events=1,
    )
    decision = run("start_dosing", facts, Role.THERAPIST)
    assert codes(decision) == [
        "role_not_permitted",
        "integration_sessions",
        "dosing_interval",
        "cycle_limit",
        "pregnancy_test",
        "open_serious_adverse_event",
    ]
    assert decision.reasons[0] == (
        "A therapist may not start dosing; only a coordinator or an investigator may."
    )


# --- overrides ----------------------------------------------------------------------------


OFF_SCHEDULE = replace(INTEGRATED, completed_integration_sessions=1, days_since_last_dosing=10)


def test_an_investigator_overrides_the_interval_and_integration_count_with_a_reason() -> None:
    decision = run("start_dosing", OFF_SCHEDULE, Role.INVESTIGATOR, reason="Travel", override=True)
    assert decision.allowed is True
    assert decision.failures == ()
    assert [(f.code, f.message) for f in decision.overridden] == [
        ("integration_sessions", INTEGRATION_SHORT),
        ("dosing_interval", INTERVAL_SHORT),
    ]
    assert decision.new_cycle == 2
    outcomes = {result["check"]: result["outcome"] for result in decision.guard_results()}
    assert outcomes == {
        "role": "passed",
        "source_state": "passed",
        "preparation_sessions_completed": "passed",
        "integration_sessions_completed": "overridden",
        "dosing_interval_respected": "overridden",
        "cycle_limit_not_reached": "passed",
        "pregnancy_test_negative": "passed",
        "no_open_serious_adverse_event": "passed",
        "randomised_before_first_dosing": "passed",
    }


def test_without_override_the_overridable_failures_stand() -> None:
    decision = run("start_dosing", OFF_SCHEDULE, Role.INVESTIGATOR, reason="Travel")
    assert decision.reasons == (INTEGRATION_SHORT, INTERVAL_SHORT)
    assert decision.overridden == ()


def test_an_override_needs_a_reason() -> None:
    decision = run("start_dosing", OFF_SCHEDULE, Role.INVESTIGATOR, override=True)
    assert decision.allowed is False
    assert decision.reasons == (
        "A reason is required to override a protocol guard; it becomes a deviation.",
    )
    assert [f.code for f in decision.overridden] == ["integration_sessions", "dosing_interval"]


def test_a_coordinator_cannot_override() -> None:
    decision = run("start_dosing", OFF_SCHEDULE, Role.COORDINATOR, reason="Travel", override=True)
    assert decision.allowed is False
    assert decision.overridden == ()
    assert decision.reasons == (
        INTEGRATION_SHORT,
        INTERVAL_SHORT,
        "Only an investigator may override a protocol guard; a coordinator may not.",
    )


def test_an_override_leaves_the_non_overridable_failures_standing() -> None:
    facts = replace(OFF_SCHEDULE, cycle=3, open_serious_adverse_events=1)
    decision = run("start_dosing", facts, Role.INVESTIGATOR, reason="Travel", override=True)
    assert codes(decision) == ["cycle_limit", "open_serious_adverse_event"]
    assert [f.code for f in decision.overridden] == ["integration_sessions", "dosing_interval"]


def test_a_protocol_without_overridable_guards_overrides_nothing() -> None:
    strict = replace(PROTOCOL, overridable_guards=frozenset())
    decision = decide(
        "start_dosing", OFF_SCHEDULE, Role.INVESTIGATOR, strict, reason="Travel", override=True
    )
    assert codes(decision) == ["integration_sessions", "dosing_interval"]
    assert decision.overridden == ()


def test_never_overridable_guards_stay_so_even_if_a_definition_lists_them() -> None:
    lax = replace(PROTOCOL, overridable_guards=frozenset({"consent_missing", "cycle_limit"}))
    facts = replace(SCREENED, consent_recorded=False)
    decision = decide(
        "confirm_eligibility", facts, Role.INVESTIGATOR, lax, reason="x", override=True
    )
    assert codes(decision) == ["consent_missing"]


# --- complete_dosing ----------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.INVESTIGATOR, Role.THERAPIST])
def test_complete_dosing_allowed(role: Role) -> None:
    decision = run("complete_dosing", DOSED, role)
    assert decision.allowed is True
    assert (decision.target, decision.new_cycle) == (State.INTEGRATION, 1)


def test_complete_dosing_without_a_session() -> None:
    decision = run("complete_dosing", replace(DOSED, dosing_session=None))
    assert decision.reasons == (
        "The dosing session of cycle 1 must be completed; none is recorded.",
    )


def test_complete_dosing_reports_every_shortcoming_of_the_session() -> None:
    session = DosingSessionFacts(
        completed=False,
        has_initial_dose=False,
        baseline_vitals_present=False,
        max_vitals_gap_minutes=95,
        therapists_present=1,
        monitoring_hours=6.5,
        overnight_stay_recorded=False,
        unacknowledged_alerts=2,
    )
    decision = run("complete_dosing", replace(DOSED, dosing_session=session))
    assert decision.reasons == (
        "The dosing session of cycle 1 must be completed; it is not marked completed.",
        "An initial dose (80 mg or 120 mg) must be recorded; none is.",
        "Baseline vital signs within 60 min before the initial dose are required; "
        "none are recorded.",
        "Vital signs must be taken at most 60 min apart until the end of the session; "
        "the longest gap was 95 min.",
        "2 therapists must be present during dosing; 1 recorded.",
        "Monitoring must last at least 8 h from the initial dose; 6.5 h were recorded.",
        "An overnight stay after the dosing session must be recorded; it is not.",
        "Every vital-sign alert must be acknowledged; 2 alerts are not.",
    )
    assert all(not failure.overridable for failure in decision.failures)


def test_complete_dosing_with_missing_readings_and_times() -> None:
    session = replace(
        GOOD_SESSION, max_vitals_gap_minutes=None, monitoring_hours=None, unacknowledged_alerts=1
    )
    decision = run("complete_dosing", replace(DOSED, dosing_session=session))
    assert decision.reasons == (
        "Vital signs must be taken at most 60 min apart until the end of the session; "
        "no readings are recorded.",
        "Monitoring must last at least 8 h from the initial dose; "
        "the start or end is not recorded.",
        "Every vital-sign alert must be acknowledged; 1 alert is not.",
    )


def test_complete_dosing_boundaries_pass() -> None:
    session = replace(GOOD_SESSION, max_vitals_gap_minutes=60, monitoring_hours=8)
    assert run("complete_dosing", replace(DOSED, dosing_session=session)).allowed is True


def test_overnight_stay_is_checked_only_where_the_protocol_requires_it() -> None:
    rules = replace(PROTOCOL.dosing, overnight_stay_required=False)
    no_overnight = replace(PROTOCOL, dosing=rules)
    facts = replace(DOSED, dosing_session=replace(GOOD_SESSION, overnight_stay_recorded=False))
    assert run("complete_dosing", facts).allowed is False
    decision = decide(
        "complete_dosing", facts, Role.COORDINATOR, no_overnight, reason=None, override=False
    )
    assert decision.allowed is True


# --- complete_protocol --------------------------------------------------------------------


def test_complete_protocol_after_the_third_cycle() -> None:
    decision = run("complete_protocol", replace(INTEGRATED, cycle=3))
    assert decision.allowed is True
    assert (decision.target, decision.new_cycle) == (State.COMPLETED, 3)


def test_complete_protocol_before_the_last_cycle_is_refused_even_with_override() -> None:
    facts = replace(INTEGRATED, cycle=2, completed_integration_sessions=0)
    decision = run("complete_protocol", facts, Role.INVESTIGATOR, reason="Stop", override=True)
    assert decision.reasons == (
        "The protocol is completed after cycle 3; the participant is in cycle 2.",
    )
    assert [f.code for f in decision.overridden] == ["integration_sessions"]


def test_complete_protocol_integration_count_is_overridable() -> None:
    facts = replace(INTEGRATED, cycle=3, completed_integration_sessions=2)
    refused = run("complete_protocol", facts)
    assert refused.reasons == (
        "3 completed integration sessions of cycle 3 are required; 2 recorded.",
    )
    allowed = run("complete_protocol", facts, Role.INVESTIGATOR, reason="Moved", override=True)
    assert allowed.allowed is True
    assert [f.code for f in allowed.overridden] == ["integration_sessions"]


# --- place_on_hold and release_hold -------------------------------------------------------


@pytest.mark.parametrize(
    "state", [State.SCREENING, State.PREPARATION, State.DOSING, State.INTEGRATION]
)
@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.INVESTIGATOR, Role.THERAPIST])
def test_place_on_hold_from_every_open_phase(state: State, role: Role) -> None:
    facts = replace(DOSED, state=state)
    assert run("place_on_hold", facts, role).reasons == (
        "A reason is required to place a participant on hold.",
    )
    decision = run("place_on_hold", facts, role, reason="Elevated blood pressure")
    assert decision.allowed is True
    assert (decision.source, decision.target, decision.new_cycle) == (state, State.ON_HOLD, 1)


def test_place_on_hold_twice_is_refused() -> None:
    held = replace(DOSED, state=State.ON_HOLD, held_from=State.DOSING)
    assert run("place_on_hold", held, reason="Again").reasons == (
        "To place a participant on hold the participant must be in screening, in preparation, "
        "in dosing or in integration; they are on hold.",
    )


@pytest.mark.parametrize(
    "held_from", [State.SCREENING, State.PREPARATION, State.DOSING, State.INTEGRATION]
)
def test_release_hold_returns_to_the_state_held_from(held_from: State) -> None:
    held = replace(DOSED, state=State.ON_HOLD, held_from=held_from)
    decision = run("release_hold", held, Role.INVESTIGATOR, reason="Reviewed, safe")
    assert decision.allowed is True
    assert (decision.target, decision.new_cycle) == (held_from, 1)


def test_release_hold_is_for_investigators_with_a_reason() -> None:
    held = replace(DOSED, state=State.ON_HOLD, held_from=State.DOSING)
    decision = run("release_hold", held, Role.COORDINATOR)
    assert decision.reasons == (
        "A coordinator may not release a hold; only an investigator may.",
        "A reason is required to release a hold.",
    )


def test_release_hold_with_an_open_serious_adverse_event_needs_a_documented_override() -> None:
    held = replace(
        DOSED, state=State.ON_HOLD, held_from=State.INTEGRATION, open_serious_adverse_events=1
    )
    refused = run("release_hold", held, Role.INVESTIGATOR, reason="Reviewed")
    assert refused.reasons == (
        "1 serious adverse event is open; an investigator may release the hold only with an "
        "override documenting why.",
    )
    assert refused.failures[0].overridable is True
    released = run(
        "release_hold", held, Role.INVESTIGATOR, reason="Hospitalised, unrelated", override=True
    )
    assert released.allowed is True
    assert released.target is State.INTEGRATION
    assert [f.code for f in released.overridden] == ["open_serious_adverse_event"]
    without_reason = run("release_hold", held, Role.INVESTIGATOR, override=True)
    assert without_reason.reasons == ("A reason is required to release a hold.",)


def test_release_hold_without_a_recorded_origin_is_refused() -> None:
    held = replace(DOSED, state=State.ON_HOLD, held_from=None)
    decision = run("release_hold", held, Role.INVESTIGATOR, reason="Reviewed")
    assert decision.reasons == (
        "The state the participant was held from is not recorded, so the hold cannot be released.",
    )


# --- withdraw -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [State.SCREENING, State.PREPARATION, State.DOSING, State.INTEGRATION, State.ON_HOLD],
)
def test_withdraw_from_every_open_state(state: State) -> None:
    facts = replace(DOSED, state=state, held_from=State.DOSING if state is State.ON_HOLD else None)
    decision = run(
        "withdraw",
        facts,
        reason="Moved abroad",
        withdrawal_category=WithdrawalCategory.PARTICIPANT_DECISION,
    )
    assert decision.allowed is True
    assert decision.target is State.WITHDRAWN


def test_withdraw_needs_a_reason_and_a_category() -> None:
    decision = run("withdraw", DOSED)
    assert decision.reasons == (
        "A reason is required to withdraw a participant.",
        "A withdrawal category is required: participant decision, investigator decision, "
        "adverse event, lost to follow up or other.",
    )


@pytest.mark.parametrize("state", [State.COMPLETED, State.SCREEN_FAILED, State.WITHDRAWN])
def test_nothing_applies_to_a_closed_participant(state: State) -> None:
    facts = replace(INTEGRATED, state=state, cycle=3)
    for name in TRANSITIONS:
        decision = run(
            name,
            facts,
            Role.INVESTIGATOR,
            reason="Because",
            override=True,
            withdrawal_category=WithdrawalCategory.OTHER,
        )
        assert codes(decision) == ["wrong_state"], name
    assert run(
        "withdraw", facts, reason="x", withdrawal_category=WithdrawalCategory.OTHER
    ).reasons == (
        "To withdraw a participant the participant must be in screening, in preparation, "
        f"in dosing, in integration, on hold or in follow-up; they are in "
        f"{state.replace('_', ' ')}.",
    )


# --- roles, wrong states, unknown names ---------------------------------------------------


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ADMIN])
@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_auditor_and_admin_can_apply_nothing(role: Role, name: str) -> None:
    facts = replace(INTEGRATED, state=next(iter(sorted(TRANSITIONS[name].sources))), cycle=3)
    facts = replace(facts, held_from=State.DOSING if facts.state is State.ON_HOLD else None)
    decision = run(
        name, facts, role, reason="Because", withdrawal_category=WithdrawalCategory.OTHER
    )
    assert decision.allowed is False
    assert codes(decision)[0] == "role_not_permitted"


def test_a_wrong_state_skips_the_guards_and_says_so_in_the_results() -> None:
    decision = run("complete_dosing", SCREENED)
    assert decision.reasons == (
        "To complete dosing the participant must be in dosing; they are in screening.",
    )
    results = decision.guard_results()
    assert results[1]["outcome"] == "failed"
    assert {r["outcome"] for r in results[2:]} == {"skipped"}
    assert len(results) == 2 + len(TRANSITIONS["complete_dosing"].guards)


def test_guard_results_are_json() -> None:
    decision = run("start_dosing", replace(PREPARED, completed_preparation_sessions=2))
    results = json.loads(json.dumps(decision.guard_results()))
    assert results[2] == {
        "check": "preparation_sessions_completed",
        "outcome": "failed",
        "failures": [
            {
                "code": "preparation_sessions",
                "message": "3 completed preparation sessions are required; 2 recorded.",
                "overridable": False,
            }
        ],
        "overridden": [],
    }


def test_an_unknown_transition_is_an_error() -> None:
    with pytest.raises(UnknownTransitionError, match="unknown transition 'teleport'"):
        run("teleport", SCREENED)


# --- allowed_transitions ------------------------------------------------------------------


def test_allowed_transitions_in_screening() -> None:
    options = allowed_transitions(
        replace(SCREENED, consent_recorded=False), Role.COORDINATOR, PROTOCOL
    )
    assert [(o.name, o.allowed, o.reasons) for o in options] == [
        ("confirm_eligibility", False, ("Informed consent must be recorded; none is recorded.",)),
        ("fail_screening", True, ()),
        ("place_on_hold", True, ()),
        ("withdraw", True, ()),
    ]
    assert [o.reason_required for o in options] == [False, True, True, True]
    assert options[0].to_dict() == {
        "transition": "confirm_eligibility",
        "target": "preparation",
        "allowed": False,
        "reasons": ["Informed consent must be recorded; none is recorded."],
        "reason_required": False,
        "can_override": False,
    }


def test_allowed_transitions_offers_an_override_to_an_investigator_only() -> None:
    by_investigator = allowed_transitions(OFF_SCHEDULE, Role.INVESTIGATOR, PROTOCOL)
    start = next(o for o in by_investigator if o.name == "start_dosing")
    assert (start.allowed, start.can_override) == (False, True)
    assert start.reasons == (INTEGRATION_SHORT, INTERVAL_SHORT)
    by_coordinator = allowed_transitions(OFF_SCHEDULE, Role.COORDINATOR, PROTOCOL)
    start = next(o for o in by_coordinator if o.name == "start_dosing")
    assert (start.allowed, start.can_override) == (False, False)


def test_allowed_transitions_including_other_states() -> None:
    options = allowed_transitions(
        replace(INTEGRATED, state=State.ON_HOLD, held_from=State.INTEGRATION),
        Role.INVESTIGATOR,
        PROTOCOL,
        include_other_states=True,
    )
    assert [o.name for o in options] == list(TRANSITIONS)
    assert [o.name for o in options if o.allowed] == ["release_hold", "withdraw"]
    release = next(o for o in options if o.name == "release_hold")
    assert release.target is State.INTEGRATION
    confirm = options[0]
    assert confirm.reasons == (
        "To confirm eligibility the participant must be in screening; they are on hold.",
    )
