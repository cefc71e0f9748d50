"""The domain core of tracker: the protocol as data, the state machine, and the checklist.

Standard library only, no I/O beyond reading a protocol file: the services build a
``ParticipantFacts`` snapshot, ask ``decide`` and apply the ``Decision``.
"""

from tracker.protocol.checklist import (
    ChecklistAnswer,
    ChecklistEvaluation,
    ChecklistOutcome,
    ReviewAssessment,
    checklist_content_for_signature,
    evaluate_checklist,
    unknown_item_codes,
)
from tracker.protocol.childbearing import (
    childbearing_potential_applies,
    childbearing_problems,
    pregnancy_test_required,
)
from tracker.protocol.definition import (
    AlertThresholds,
    ChecklistCategory,
    ChecklistItem,
    DosingRules,
    ItemKind,
    ProtocolDefinition,
    Schedule,
    VitalSignRules,
)
from tracker.protocol.facts import DosingSessionFacts, ParticipantFacts, PregnancyTestStatus
from tracker.protocol.failures import NEVER_OVERRIDABLE, GuardCode, GuardFailure
from tracker.protocol.loader import ProtocolFileError, load_protocol, load_protocol_file
from tracker.protocol.records import (
    TAKEN_WHEN_CLOSED,
    RecordKind,
    closed_record_refusal,
    open_for,
)
from tracker.protocol.roles import Role
from tracker.protocol.sessions import (
    FINAL_STATUSES,
    SESSION_KIND_FOR_STATE,
    STATUS_MOVES,
    SessionChange,
    SessionKind,
    SessionStatus,
    session_change_problems,
)
from tracker.protocol.states import (
    CLOSED_STATES,
    HOLDABLE_STATES,
    Phase,
    State,
    WithdrawalCategory,
    phase_of,
)
from tracker.protocol.transitions import (
    TRANSITIONS,
    CheckResult,
    Decision,
    Transition,
    TransitionOption,
    UnknownTransitionError,
    allowed_transitions,
    can_place_on_hold,
    decide,
)
from tracker.protocol.vitals import PLAUSIBLE_RANGES, plausible_check, reading_problems

__all__ = [
    "CLOSED_STATES",
    "FINAL_STATUSES",
    "HOLDABLE_STATES",
    "NEVER_OVERRIDABLE",
    "PLAUSIBLE_RANGES",
    "SESSION_KIND_FOR_STATE",
    "STATUS_MOVES",
    "TAKEN_WHEN_CLOSED",
    "TRANSITIONS",
    "AlertThresholds",
    "CheckResult",
    "ChecklistAnswer",
    "ChecklistCategory",
    "ChecklistEvaluation",
    "ChecklistItem",
    "ChecklistOutcome",
    "Decision",
    "DosingRules",
    "DosingSessionFacts",
    "GuardCode",
    "GuardFailure",
    "ItemKind",
    "ParticipantFacts",
    "Phase",
    "PregnancyTestStatus",
    "ProtocolDefinition",
    "ProtocolFileError",
    "RecordKind",
    "ReviewAssessment",
    "Role",
    "Schedule",
    "SessionChange",
    "SessionKind",
    "SessionStatus",
    "State",
    "Transition",
    "TransitionOption",
    "UnknownTransitionError",
    "VitalSignRules",
    "WithdrawalCategory",
    "allowed_transitions",
    "can_place_on_hold",
    "checklist_content_for_signature",
    "childbearing_potential_applies",
    "childbearing_problems",
    "closed_record_refusal",
    "decide",
    "evaluate_checklist",
    "load_protocol",
    "load_protocol_file",
    "open_for",
    "phase_of",
    "plausible_check",
    "pregnancy_test_required",
    "reading_problems",
    "session_change_problems",
    "unknown_item_codes",
]
