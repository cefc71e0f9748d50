"""The session-dependent facts the transition guards decide on, read in a fixed number of
queries whatever the participant's history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.db import utcnow
from tracker.participants.models import Participant
from tracker.protocol import DosingSessionFacts, PregnancyTestStatus, ProtocolDefinition
from tracker.protocol.dosing import Dose, DoseKind, dosing_session_facts
from tracker.sessions.models import (
    AdverseEvent,
    DoseAdministration,
    PregnancyTest,
    TherapySession,
    VitalSignAlert,
    VitalSignReading,
)


@dataclass(frozen=True)
class SessionFacts:
    completed_preparation_sessions: int
    completed_integration_sessions: int
    days_since_last_dosing: int | None
    pregnancy_test: PregnancyTestStatus
    open_serious_adverse_events: int
    dosing_session: DosingSessionFacts | None


def current_dosing_session(session: Session, participant: Participant) -> TherapySession | None:
    """The dosing session of the participant's current cycle (not cancelled or missed)."""
    return session.scalar(
        sa.select(TherapySession)
        .where(
            TherapySession.participant_id == participant.id,
            TherapySession.kind == "dosing",
            TherapySession.cycle == participant.cycle,
            TherapySession.status.in_(["scheduled", "completed"]),
        )
        .order_by(TherapySession.scheduled_at.desc())
        .limit(1)
    )


def dosing_facts_of(
    session: Session, dosing: TherapySession, protocol: ProtocolDefinition
) -> DosingSessionFacts:
    doses = [
        Dose(DoseKind(d.kind), d.amount_mg, d.administered_at)
        for d in session.scalars(
            sa.select(DoseAdministration).where(DoseAdministration.session_id == dosing.id)
        )
    ]
    times = list(
        session.scalars(
            sa.select(VitalSignReading.measured_at).where(VitalSignReading.session_id == dosing.id)
        )
    )
    open_alerts = session.scalar(
        sa.select(sa.func.count())
        .select_from(VitalSignAlert)
        .where(VitalSignAlert.session_id == dosing.id, VitalSignAlert.acknowledged_at.is_(None))
    )
    return dosing_session_facts(
        protocol,
        completed=dosing.status == "completed",
        ended_at=dosing.ended_at,
        doses=doses,
        reading_times=times,
        therapists_present=len(dosing.therapists),
        overnight_stay=dosing.overnight_stay,
        unacknowledged_alerts=int(open_alerts or 0),
    )


def session_facts(
    session: Session, participant: Participant, protocol: ProtocolDefinition
) -> SessionFacts:
    completed = (
        sa.select(TherapySession.kind, TherapySession.cycle, sa.func.count())
        .where(
            TherapySession.participant_id == participant.id, TherapySession.status == "completed"
        )
        .group_by(TherapySession.kind, TherapySession.cycle)
    )
    counts = {(kind, cycle): n for kind, cycle, n in session.execute(completed)}
    preparation = sum(n for (kind, _), n in counts.items() if kind == "preparation")
    integration = counts.get(("integration", participant.cycle), 0)

    now = utcnow()
    last_dosing = session.scalar(
        sa.select(sa.func.max(TherapySession.started_at)).where(
            TherapySession.participant_id == participant.id,
            TherapySession.kind == "dosing",
            TherapySession.status == "completed",
        )
    )
    days = None if last_dosing is None else (now.date() - last_dosing.date()).days

    pregnancy = PregnancyTestStatus.NOT_APPLICABLE
    if participant.pregnancy_tests_required:
        window = timedelta(hours=protocol.dosing.pregnancy_test_within_hours)
        latest = session.scalar(
            sa.select(PregnancyTest)
            .where(
                PregnancyTest.participant_id == participant.id,
                PregnancyTest.tested_at >= now - window,
            )
            .order_by(PregnancyTest.tested_at.desc())
            .limit(1)
        )
        if latest is None:
            pregnancy = PregnancyTestStatus.MISSING_OR_STALE
        elif latest.result == "positive":
            pregnancy = PregnancyTestStatus.POSITIVE
        else:
            pregnancy = PregnancyTestStatus.NEGATIVE_WITHIN_WINDOW

    open_saes = session.scalar(
        sa.select(sa.func.count())
        .select_from(AdverseEvent)
        .where(
            AdverseEvent.participant_id == participant.id,
            AdverseEvent.serious.is_(True),
            AdverseEvent.resolved_at.is_(None),
        )
    )
    dosing = current_dosing_session(session, participant) if participant.cycle > 0 else None
    return SessionFacts(
        completed_preparation_sessions=preparation,
        completed_integration_sessions=integration,
        days_since_last_dosing=days,
        pregnancy_test=pregnancy,
        open_serious_adverse_events=int(open_saes or 0),
        dosing_session=dosing_facts_of(session, dosing, protocol) if dosing is not None else None,
    )
