"""The session life cycle as a table in the core, and the checks of a session change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.protocol import (
    FINAL_STATUSES,
    SESSION_KIND_FOR_STATE,
    STATUS_MOVES,
    SessionChange,
    SessionKind,
    SessionStatus,
    State,
    session_change_problems,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _change(**kwargs: object) -> SessionChange:
    values: dict[str, object] = {
        "status": SessionStatus.SCHEDULED,
        "new_status": "scheduled",
        "started_at": None,
        "ended_at": None,
        "recorded_from": None,
        "recorded_until": None,
        "now": NOW,
        **kwargs,
    }
    return SessionChange(**values)  # type: ignore[arg-type]


def test_the_table_names_every_status_and_a_session_over_stays_over() -> None:
    assert set(STATUS_MOVES) == set(SessionStatus)
    assert STATUS_MOVES[SessionStatus.SCHEDULED] == set(SessionStatus)
    assert {
        SessionStatus.COMPLETED,
        SessionStatus.CANCELLED,
        SessionStatus.MISSED,
    } == FINAL_STATUSES
    for status in FINAL_STATUSES:
        assert STATUS_MOVES[status] == {status}


def test_each_open_treatment_state_allows_its_own_kind() -> None:
    assert SESSION_KIND_FOR_STATE == {
        State.PREPARATION: SessionKind.PREPARATION,
        State.DOSING: SessionKind.DOSING,
        State.INTEGRATION: SessionKind.INTEGRATION,
    }


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_a_session_that_is_over_keeps_its_status(final: SessionStatus) -> None:
    start, end = NOW - timedelta(hours=3), NOW - timedelta(hours=1)
    problems = session_change_problems(
        _change(status=final, new_status="scheduled", started_at=start, ended_at=end)
    )
    assert problems == [f"The session is already {final}; its status cannot change."]


def test_every_problem_of_a_change_is_reported_at_once() -> None:
    problems = session_change_problems(
        _change(
            new_status="completed",
            started_at=NOW + timedelta(hours=1),
            ended_at=NOW,
            recorded_from=NOW - timedelta(hours=2),
        )
    )
    assert problems == [
        "The start cannot be in the future.",
        "The end must be after the start.",
        "Readings or doses were recorded before that start time.",
    ]
    assert session_change_problems(_change(new_status="finished")) == [
        "The status is one of scheduled, completed, cancelled, missed."
    ]
    assert session_change_problems(_change(new_status="completed")) == [
        "A completed session needs its start and its end."
    ]
    start = NOW - timedelta(hours=4)
    assert (
        session_change_problems(
            _change(new_status="completed", started_at=start, ended_at=NOW, recorded_until=NOW)
        )
        == []
    )
