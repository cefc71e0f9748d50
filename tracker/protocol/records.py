"""Which clinical records a participant can still take (SPEC §4).

A closed participant (completed, screen failed, withdrawn) takes no new record of any kind.
What stays open is the follow-up of records already made: an open adverse event is assessed
and followed to its outcome, an alert acknowledged, a note corrected; those are changes of an
existing record, not new ones.
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
    ASSESSMENT = "assessment"


# Kinds a closed participant still takes: none (SPEC §4). A protocol that collects adverse
# events for a window after the last dose would name that kind here, with its window.
TAKEN_WHEN_CLOSED: frozenset[RecordKind] = frozenset()


def closed_record_refusal(state: State, kind: RecordKind, study_id: str) -> str | None:
    """Why ``kind`` cannot be recorded for a participant in ``state``, or None."""
    if state in CLOSED_STATES and kind not in TAKEN_WHEN_CLOSED:
        return (
            f"{study_id} is {state.value.replace('_', ' ')}: a closed participant takes no new "
            f"{kind.value} (an open adverse event is still followed up)."
        )
    return None


def open_for(state: State) -> dict[str, bool]:
    """For a page: which kinds of record can be added now, by kind name."""
    return {kind.name: closed_record_refusal(state, kind, "") is None for kind in RecordKind}
