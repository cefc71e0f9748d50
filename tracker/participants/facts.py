"""The facts of the participant's records (sessions, dosing records, safety records) that the
transition guards decide on, read in a fixed number of queries whatever the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from tracker.db import utcnow
from tracker.dosing import queries as dosing_queries
from tracker.dosing.queries import DosingRecord
from tracker.participants.models import Participant
from tracker.protocol import (
    DosingSessionFacts,
    PregnancyTestStatus,
    ProtocolDefinition,
    SessionKind,
    SessionStatus,
    pregnancy_test_required,
)
from tracker.protocol.dosing import Dose, DoseKind, days_between_dosings, dosing_session_facts
from tracker.safety import queries as safety_queries
from tracker.safety.models import AdverseEvent, PregnancyTest
from tracker.sessions import queries as session_queries
from tracker.sessions.models import TherapySession


@dataclass(frozen=True)
class SessionFacts:
    completed_preparation_sessions: int
    completed_integration_sessions: int
    days_since_last_dosing: int | None
    pregnancy_test: PregnancyTestStatus
    open_serious_adverse_events: int
    dosing_session: DosingSessionFacts | None


@dataclass(frozen=True)
class SessionRecords:
    """The participant's rows the session facts are derived from. The participant page has
    them loaded for its own sections and hands them in, so nothing is read twice."""

    sessions: Sequence[TherapySession]
    adverse_events: Sequence[AdverseEvent]
    pregnancy_tests: Sequence[PregnancyTest]
    # The dosing sessions' doses and readings by session id, when the caller has read them.
    dosing_records: Mapping[int, DosingRecord] = field(default_factory=dict)


def load_session_records(db: Session, participant_id: int) -> SessionRecords:
    """Three indexed reads by participant, whatever the history's length."""
    return SessionRecords(
        sessions=session_queries.sessions_of(db, participant_id),
        adverse_events=safety_queries.adverse_events_of(db, participant_id),
        pregnancy_tests=safety_queries.pregnancy_tests_of(db, participant_id),
    )


def current_dosing_session(
    participant: Participant, sessions: Sequence[TherapySession]
) -> TherapySession | None:
    """The dosing session of the participant's current cycle (not cancelled or missed)."""
    candidates = [
        s
        for s in sessions
        if s.kind == SessionKind.DOSING
        and s.cycle == participant.cycle
        and s.status in (SessionStatus.SCHEDULED, SessionStatus.COMPLETED)
    ]
    return max(candidates, key=lambda s: (s.scheduled_at, s.id), default=None)


def dosing_facts_of(
    db: Session,
    dosing: TherapySession,
    protocol: ProtocolDefinition,
    record: DosingRecord | None = None,
) -> DosingSessionFacts:
    """The facts of one dosing session, from its ``record`` when the caller has read it."""
    if record is None:
        record = dosing_queries.dosing_records_of(db, [dosing.id])[dosing.id]
    doses = [Dose(DoseKind(d.kind), d.amount_mg, d.administered_at) for d in record.doses]
    times = [r.measured_at for r in record.readings]
    return dosing_session_facts(
        protocol,
        completed=dosing.status == SessionStatus.COMPLETED,
        ended_at=dosing.ended_at,
        doses=doses,
        reading_times=times,
        therapists_present=len(dosing.therapists),
        overnight_stay=dosing.overnight_stay,
        unacknowledged_alerts=len(record.open_alerts),
    )


def session_facts(
    db: Session,
    participant: Participant,
    protocol: ProtocolDefinition,
    records: SessionRecords | None = None,
) -> SessionFacts:
    """The guards' session facts, derived from the participant's rows (read here unless the
    caller has them already) and, for the current dosing session, its doses and readings."""
    if records is None:
        records = load_session_records(db, participant.id)
    completed = [s for s in records.sessions if s.status == SessionStatus.COMPLETED]
    preparation = sum(1 for s in completed if s.kind == SessionKind.PREPARATION)
    integration = sum(
        1 for s in completed if s.kind == SessionKind.INTEGRATION and s.cycle == participant.cycle
    )

    now = utcnow()
    last_dosing = max(
        (
            s.started_at
            for s in completed
            if s.kind == SessionKind.DOSING and s.started_at is not None
        ),
        default=None,
    )
    days = None if last_dosing is None else days_between_dosings(last_dosing, now)

    pregnancy = PregnancyTestStatus.NOT_APPLICABLE
    if pregnancy_test_required(participant.sex, participant.childbearing_potential):
        window = timedelta(hours=protocol.dosing.pregnancy_test_within_hours)
        latest = max(
            (t for t in records.pregnancy_tests if t.tested_at >= now - window),
            key=lambda t: (t.tested_at, t.id),
            default=None,
        )
        if latest is None:
            pregnancy = PregnancyTestStatus.MISSING_OR_STALE
        elif latest.result == "positive":
            pregnancy = PregnancyTestStatus.POSITIVE
        else:
            pregnancy = PregnancyTestStatus.NEGATIVE_WITHIN_WINDOW

    open_saes = sum(1 for e in records.adverse_events if e.serious and e.resolved_at is None)
    dosing = (
        current_dosing_session(participant, records.sessions) if participant.cycle > 0 else None
    )
    return SessionFacts(
        completed_preparation_sessions=preparation,
        completed_integration_sessions=integration,
        days_since_last_dosing=days,
        pregnancy_test=pregnancy,
        open_serious_adverse_events=open_saes,
        dosing_session=(
            dosing_facts_of(db, dosing, protocol, records.dosing_records.get(dosing.id))
            if dosing is not None
            else None
        ),
    )
