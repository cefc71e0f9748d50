"""Which clinical records a participant can still take (SPEC §3, §4).

A closed participant (completed, screen failed, withdrawn) takes no new record, with one
exception: an adverse event. Safety reporting does not end with participation: an adverse
event learned of after a withdrawal or the last visit is still recorded and reported
(21 CFR 312.32; ICH E2A), and an open one is followed until it resolves.
"""

from __future__ import annotations

from enum import StrEnum

from tracker.protocol.states import CLOSED_STATES, State


class RecordKind(StrEnum):
    SESSION = "session"
    DOSE = "dose"
    VITAL_SIGNS = "vital signs"
    EFFECTS = "effects"
    SIDE_EFFECT = "side effect"
    ADVERSE_EVENT = "adverse event"
    SUICIDALITY_SCREEN = "suicidality screen"
    PREGNANCY_TEST = "pregnancy test"
    NOTE = "note"


TAKEN_WHEN_CLOSED: frozenset[RecordKind] = frozenset({RecordKind.ADVERSE_EVENT})


def closed_record_refusal(state: State, kind: RecordKind, study_id: str) -> str | None:
    """Why ``kind`` cannot be recorded for a participant in ``state``, or None."""
    if state in CLOSED_STATES and kind not in TAKEN_WHEN_CLOSED:
        return (
            f"{study_id} is {state.value.replace('_', ' ')}: a closed participant takes no new "
            f"{kind.value} (adverse events are still recorded)."
        )
    return None


def open_for(state: State) -> dict[str, bool]:
    """For a page: which kinds of record can be added now, by kind name."""
    return {kind.name: closed_record_refusal(state, kind, "") is None for kind in RecordKind}
