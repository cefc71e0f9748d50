"""The follow-up phase (SPEC §10): complete_protocol leads into it under a protocol with
follow-up timepoints, discontinue_treatment keeps who stops treatment in it, and
complete_follow_up ends it once every follow-up timepoint is resolved."""

from dataclasses import replace
from pathlib import Path

import pytest

from tracker.protocol import (
    ChecklistOutcome,
    ParticipantFacts,
    Phase,
    Role,
    State,
    WithdrawalCategory,
    decide,
    load_protocol_file,
    phase_of,
)

PROTOCOLS = Path(__file__).resolve().parents[2] / "fixtures" / "protocols"
WITHOUT = load_protocol_file(PROTOCOLS / "mdma-at-v1.toml")
WITH = load_protocol_file(PROTOCOLS / "mdma-mdd-v1.toml")
INTEGRATED = ParticipantFacts(
    state=State.INTEGRATION,
    cycle=3,
    checklist_outcome=ChecklistOutcome.ELIGIBLE,
    checklist_signed=True,
    consent_recorded=True,
    completed_preparation_sessions=3,
    completed_integration_sessions=3,
)


def run(name, facts, protocol, reason=None):  # type: ignore[no-untyped-def]
    return decide(name, facts, Role.COORDINATOR, protocol, reason=reason, override=False)


def test_complete_protocol_leads_to_follow_up_only_where_the_protocol_follows_up() -> None:
    assert run("complete_protocol", INTEGRATED, WITHOUT).target == State.COMPLETED
    with_follow_up = run("complete_protocol", INTEGRATED, WITH)
    assert with_follow_up.allowed and with_follow_up.target == State.FOLLOW_UP
    assert phase_of(State.FOLLOW_UP) == Phase.FOLLOW_UP


@pytest.mark.parametrize(
    "state", [State.PREPARATION, State.DOSING, State.INTEGRATION, State.ON_HOLD]
)
def test_who_stops_treatment_is_still_followed_up(state: State) -> None:
    facts = replace(
        INTEGRATED, state=state, cycle=1, held_from=State.DOSING if state == State.ON_HOLD else None
    )
    decision = run("discontinue_treatment", facts, WITH, reason="Chose to stop the sessions.")
    assert decision.allowed, decision.reasons
    assert decision.target == State.FOLLOW_UP
    assert run("discontinue_treatment", facts, WITH).reasons == (
        "A reason is required to discontinue treatment.",
    )


def test_without_follow_up_treatment_is_not_discontinued_but_withdrawn() -> None:
    decision = run("discontinue_treatment", INTEGRATED, WITHOUT, reason="Stopping.")
    assert decision.reasons == (
        "Protocol mdma-at version 1 has no follow-up phase; a participant who stops treatment "
        "is withdrawn instead.",
    )
    assert decision.failures[0].overridable is False


def test_follow_up_ends_when_no_follow_up_timepoint_is_open() -> None:
    following = replace(INTEGRATED, state=State.FOLLOW_UP)
    still_open = replace(following, follow_up_open=("Durability, 12 months after the last dosing",))
    refused = run("complete_follow_up", still_open, WITH)
    assert refused.reasons == (
        "Follow-up ends when every follow-up timepoint is assessed, recorded as missed or past "
        "its window; still open: Durability, 12 months after the last dosing.",
    )
    done = run("complete_follow_up", following, WITH)
    assert done.allowed and done.target == State.COMPLETED
    # A participant in follow-up takes no new dosing cycle.
    assert not run("start_dosing", following, WITH).allowed
    # And can still be withdrawn.
    withdrawn = decide(
        "withdraw",
        following,
        Role.COORDINATOR,
        WITH,
        reason="Moved away.",
        override=False,
        withdrawal_category=WithdrawalCategory.LOST_TO_FOLLOW_UP,
    )
    assert withdrawn.allowed and withdrawn.target == State.WITHDRAWN
