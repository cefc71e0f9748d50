"""Imports every model so that Base.metadata is complete (Alembic, tests)."""

from tracker.api.models import IdempotencyKey
from tracker.audit.models import AuditEvent
from tracker.auth.models import ApiToken, LoginSession, User
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    ProtocolDeviation,
    ReviewAssessment,
    TherapistAssignment,
    TransitionEvent,
)
from tracker.sessions.models import (
    AdverseEvent,
    DoseAdministration,
    Note,
    PregnancyTest,
    SessionEffects,
    SideEffect,
    SuicidalityScreen,
    TherapySession,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion

__all__ = [
    "AdverseEvent",
    "ApiToken",
    "AuditEvent",
    "ChecklistAnswer",
    "ChecklistSignature",
    "Consent",
    "DoseAdministration",
    "IdempotencyKey",
    "LoginSession",
    "Note",
    "Participant",
    "PregnancyTest",
    "ProtocolDeviation",
    "ProtocolVersion",
    "ReviewAssessment",
    "SessionEffects",
    "SideEffect",
    "Site",
    "SuicidalityScreen",
    "TherapistAssignment",
    "TherapySession",
    "TransitionEvent",
    "User",
    "VitalSignAlert",
    "VitalSignReading",
]
