"""Guard codes and the failure a guard reports when a transition is not allowed."""

from dataclasses import dataclass
from enum import StrEnum


class GuardCode(StrEnum):
    """Stable identifiers of every check a transition can fail; the protocol file names them."""

    ROLE_NOT_PERMITTED = "role_not_permitted"
    WRONG_STATE = "wrong_state"
    REASON_REQUIRED = "reason_required"
    WITHDRAWAL_CATEGORY_REQUIRED = "withdrawal_category_required"
    OVERRIDE_NOT_PERMITTED = "override_not_permitted"
    HELD_FROM_UNKNOWN = "held_from_unknown"
    CHECKLIST_NOT_ELIGIBLE = "checklist_not_eligible"
    CHECKLIST_NOT_SIGNED = "checklist_not_signed"
    CONSENT_MISSING = "consent_missing"
    PREPARATION_SESSIONS = "preparation_sessions"
    INTEGRATION_SESSIONS = "integration_sessions"
    DOSING_INTERVAL = "dosing_interval"
    CYCLE_LIMIT = "cycle_limit"
    FINAL_CYCLE_NOT_REACHED = "final_cycle_not_reached"
    PREGNANCY_TEST = "pregnancy_test"
    OPEN_SERIOUS_ADVERSE_EVENT = "open_serious_adverse_event"
    DOSING_SESSION_NOT_COMPLETED = "dosing_session_not_completed"
    INITIAL_DOSE_MISSING = "initial_dose_missing"
    BASELINE_VITALS_MISSING = "baseline_vitals_missing"
    VITALS_GAP = "vitals_gap"
    THERAPISTS_PRESENT = "therapists_present"
    MONITORING_HOURS = "monitoring_hours"
    OVERNIGHT_STAY = "overnight_stay"
    UNACKNOWLEDGED_ALERTS = "unacknowledged_alerts"
    NO_FOLLOW_UP = "no_follow_up"
    FOLLOW_UP_OPEN = "follow_up_open"
    NOT_RANDOMISED = "not_randomised"


# SPEC §3: eligibility, consent, the cycle limit and open serious adverse events are never
# overridable, and neither are the checks on who asks, from where and with what reason; a
# protocol file that marks one of these overridable is rejected by the loader.
NEVER_OVERRIDABLE: frozenset[GuardCode] = frozenset(
    {
        GuardCode.ROLE_NOT_PERMITTED,
        GuardCode.WRONG_STATE,
        GuardCode.REASON_REQUIRED,
        GuardCode.WITHDRAWAL_CATEGORY_REQUIRED,
        GuardCode.OVERRIDE_NOT_PERMITTED,
        GuardCode.HELD_FROM_UNKNOWN,
        GuardCode.CHECKLIST_NOT_ELIGIBLE,
        GuardCode.CHECKLIST_NOT_SIGNED,
        GuardCode.CONSENT_MISSING,
        GuardCode.CYCLE_LIMIT,
        GuardCode.FINAL_CYCLE_NOT_REACHED,
        GuardCode.OPEN_SERIOUS_ADVERSE_EVENT,
        GuardCode.NO_FOLLOW_UP,
        GuardCode.FOLLOW_UP_OPEN,
        GuardCode.NOT_RANDOMISED,
    }
)


@dataclass(frozen=True)
class GuardFailure:
    """One reason a transition is refused.

    ``overridable`` says whether an investigator may waive it with a documented reason; a waived
    failure becomes a protocol deviation.
    """

    code: str
    message: str
    overridable: bool = False

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able form for API error details and recorded guard results."""
        return {"code": self.code, "message": self.message, "overridable": self.overridable}
