"""The core's rule of which records a participant can still take."""

from __future__ import annotations

import pytest

from tracker.protocol import CLOSED_STATES, RecordKind, State, closed_record_refusal, open_for


@pytest.mark.parametrize("state", sorted(CLOSED_STATES))
def test_a_closed_participant_takes_no_new_record(state: State) -> None:
    refused = {kind for kind in RecordKind if closed_record_refusal(state, kind, "S01-0001")}
    assert refused == set(RecordKind)
    assert open_for(state) == dict.fromkeys((kind.name for kind in RecordKind), False)


@pytest.mark.parametrize("state", sorted(set(State) - CLOSED_STATES))
def test_an_open_participant_takes_every_kind(state: State) -> None:
    assert all(closed_record_refusal(state, kind, "S01-0001") is None for kind in RecordKind)


def test_the_refusal_names_the_participant_the_state_and_the_record() -> None:
    message = closed_record_refusal(State.SCREEN_FAILED, RecordKind.NOTE, "S02-0007")
    assert message == (
        "S02-0007 is screen failed: a closed participant takes no new note "
        "(an open adverse event is still followed up)."
    )
