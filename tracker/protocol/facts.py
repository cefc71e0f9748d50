"""The snapshot of a participant that the guards decide on.

The service layer builds these from the database; the core never queries anything, so every
number a guard needs is here, already counted.
"""

from dataclasses import dataclass
from enum import StrEnum

from tracker.protocol.checklist import ChecklistOutcome
from tracker.protocol.states import State


class PregnancyTestStatus(StrEnum):
    """The pregnancy test that counts for the next dosing session."""

    NOT_APPLICABLE = "not_applicable"
    NEGATIVE_WITHIN_WINDOW = "negative_within_window"
    MISSING_OR_STALE = "missing_or_stale"
    POSITIVE = "positive"


@dataclass(frozen=True)
class DosingSessionFacts:
    """What was recorded for the current cycle's dosing session.

    ``max_vitals_gap_minutes`` is the longest interval between consecutive readings from the
    baseline to the end of the session (so a last reading long before the end counts), or None
    when there are no readings. ``monitoring_hours`` runs from the initial dose to the end of
    the session, None while either is missing.
    """

    completed: bool
    has_initial_dose: bool
    baseline_vitals_present: bool
    max_vitals_gap_minutes: float | None
    therapists_present: int
    monitoring_hours: float | None
    overnight_stay_recorded: bool
    unacknowledged_alerts: int


@dataclass(frozen=True)
class ParticipantFacts:
    """Everything the transition guards need to know about one participant, at one moment.

    ``cycle`` is 0 before the first dosing and n during dosing and integration of cycle n.
    ``checklist_signed`` means signed by an investigator and the signature still valid (no
    answer changed since). ``completed_integration_sessions`` counts the current cycle's.
    ``days_since_last_dosing`` is whole calendar days since the last dosing session, None if
    there was none. ``checklist_reasons`` are optional and only make refusal messages richer.
    """

    state: State
    held_from: State | None = None
    cycle: int = 0
    checklist_outcome: ChecklistOutcome = ChecklistOutcome.INCOMPLETE
    checklist_signed: bool = False
    checklist_reasons: tuple[str, ...] = ()
    consent_recorded: bool = False
    completed_preparation_sessions: int = 0
    completed_integration_sessions: int = 0
    days_since_last_dosing: int | None = None
    pregnancy_test: PregnancyTestStatus = PregnancyTestStatus.NOT_APPLICABLE
    open_serious_adverse_events: int = 0
    dosing_session: DosingSessionFacts | None = None
    # The follow-up timepoints neither assessed, recorded as missed, nor past their window
    # (their titles): the follow-up phase ends when there are none (SPEC §10).
    follow_up_open: tuple[str, ...] = ()
    # Whether the participant has been randomised (SPEC §11; read only where it decides).
    randomised: bool = False
