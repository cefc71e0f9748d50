"""A rule the guards enforce and the compliance report checks is decided by the same function:
for any two dosing sessions, the start_dosing guard (through the days the facts snapshot
counts) and check C04 agree on whether the interval was respected."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tracker.protocol import (
    ChecklistOutcome,
    ParticipantFacts,
    Role,
    State,
    decide,
    load_protocol_file,
)
from tracker.protocol.compliance import c04_dosing_interval
from tracker.protocol.compliance_records import (
    Outcome,
    ParticipantRecord,
    SessionRecord,
    StudyFacts,
)
from tracker.protocol.dosing import days_between_dosings

PROTOCOL = load_protocol_file(
    Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "mdma-at-v1.toml"
)
INTEGRATED = ParticipantFacts(
    state=State.INTEGRATION,
    cycle=1,
    checklist_outcome=ChecklistOutcome.ELIGIBLE,
    checklist_signed=True,
    consent_recorded=True,
    completed_preparation_sessions=3,
    completed_integration_sessions=3,
)
FIRST = datetime(2026, 3, 1, tzinfo=UTC)


def _dosing(session_id: int, started_at: datetime) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        kind="dosing",
        cycle=session_id,
        status="completed",
        started_at=started_at,
        ended_at=started_at + timedelta(hours=8),
    )


@given(
    first_minute=st.integers(min_value=0, max_value=24 * 60 - 1),
    later_minute=st.integers(min_value=0, max_value=24 * 60 - 1),
)
def test_the_interval_guard_and_check_c04_agree(first_minute: int, later_minute: int) -> None:
    # Every day count around the window, at random times of day on both sides.
    for later_day in range(61):
        last = FIRST + timedelta(minutes=first_minute)
        then = FIRST + timedelta(days=later_day, minutes=later_minute)
        _assert_agree(last, then)


def _assert_agree(last: datetime, then: datetime) -> None:
    days = days_between_dosings(last, then)
    guard = decide(
        "start_dosing",
        replace(INTEGRATED, days_since_last_dosing=days),
        Role.COORDINATOR,
        PROTOCOL,
        reason=None,
        override=False,
    )
    guard_refuses = any(f.code == "dosing_interval" for f in guard.failures)

    record = ParticipantRecord(
        study_id="P-1",
        state="integration",
        consent_signed_on=None,
        first_procedure_at=None,
        checklist_signed_at=None,
        checklist_signed_outcome=None,
        checklist_signature_voided_at=None,
        sessions=(_dosing(1, last), _dosing(2, then)),
    )
    study = StudyFacts(audit_ok=True, audit_problem=None, now=then)
    check = c04_dosing_interval(record, PROTOCOL, study)

    assert guard_refuses == (check.outcome == Outcome.FAIL), (days, guard.reasons, check)
