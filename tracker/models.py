"""Imports every model so that Base.metadata is complete (Alembic, tests)."""

from tracker.api.models import IdempotencyKey
from tracker.audit.models import AuditEvent
from tracker.auth.models import ApiToken, SignIn, User
from tracker.dosing.models import (
    DoseAdministration,
    SessionEffects,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.jobs.models import ExportJob
from tracker.notes.models import Note
from tracker.notifications.models import Notification
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ProtocolDeviation,
    RaterAssignment,
    ReviewAssessment,
    TherapistAssignment,
    TransitionEvent,
)
from tracker.pharmacy.models import (
    CountExplanation,
    DeaRegistration,
    DrugLot,
    EntryWitness,
    LedgerEntry,
    LossReport,
    StorageLocation,
)
from tracker.randomisation.models import (
    BlindingGuess,
    EmergencyUnblinding,
    RandomisationEntry,
    RandomisationList,
    StudyUnblinding,
)
from tracker.safety.models import AdverseEvent, PregnancyTest, SideEffect, SuicidalityScreen
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion

__all__ = [
    "AdverseEvent",
    "ApiToken",
    "Assessment",
    "AuditEvent",
    "BlindingGuess",
    "ChecklistAnswer",
    "ChecklistSignature",
    "Consent",
    "CountExplanation",
    "DeaRegistration",
    "DoseAdministration",
    "DrugLot",
    "EmergencyUnblinding",
    "EntryWitness",
    "ExportJob",
    "IdempotencyKey",
    "LedgerEntry",
    "LossReport",
    "MissedTimepoint",
    "Note",
    "Notification",
    "Participant",
    "PregnancyTest",
    "ProtocolDeviation",
    "ProtocolVersion",
    "RandomisationEntry",
    "RandomisationList",
    "RaterAssignment",
    "ReviewAssessment",
    "SessionEffects",
    "SideEffect",
    "SignIn",
    "Site",
    "StorageLocation",
    "StudyUnblinding",
    "SuicidalityScreen",
    "TherapistAssignment",
    "TherapySession",
    "TransitionEvent",
    "User",
    "VitalSignAlert",
    "VitalSignReading",
]
