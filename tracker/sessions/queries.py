"""Reading sessions and clinical records, in a fixed number of queries per page."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from tracker.auth.models import User
from tracker.db import utcnow
from tracker.participants.models import Participant
from tracker.participants.queries import visibility, visible_to, without_protocol_text
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


def sessions_of(session: Session, participant_id: int) -> list[TherapySession]:
    """The participant's sessions with their therapists (joined: one query, not two)."""
    return list(
        session.scalars(
            sa.select(TherapySession)
            .options(joinedload(TherapySession.therapists))
            .where(TherapySession.participant_id == participant_id)
            .order_by(TherapySession.scheduled_at, TherapySession.id)
        ).unique()
    )


@dataclass(frozen=True)
class DosingRecord:
    """What a dosing session recorded; ``effects`` is read by the session page only."""

    doses: list[DoseAdministration]
    readings: list[VitalSignReading]
    effects: SessionEffects | None = None

    @property
    def open_alerts(self) -> list[VitalSignAlert]:
        return [a for r in self.readings for a in r.alerts if a.acknowledged_at is None]


def dosing_record(session: Session, row: TherapySession) -> DosingRecord:
    return replace(dosing_records_of(session, [row.id])[row.id], effects=row.effects)


def dosing_records_of(session: Session, session_ids: list[int]) -> dict[int, DosingRecord]:
    """The doses and the readings (with their alerts) of several dosing sessions, in two
    queries whatever their number."""
    records = {i: DosingRecord(doses=[], readings=[]) for i in session_ids}
    if not session_ids:
        return records
    for dose in session.scalars(
        sa.select(DoseAdministration)
        .where(DoseAdministration.session_id.in_(session_ids))
        .order_by(DoseAdministration.administered_at, DoseAdministration.id)
    ):
        records[dose.session_id].doses.append(dose)
    for reading in session.scalars(
        sa.select(VitalSignReading)
        .options(joinedload(VitalSignReading.alerts))
        .where(VitalSignReading.session_id.in_(session_ids))
        .order_by(VitalSignReading.measured_at, VitalSignReading.id)
    ).unique():
        records[reading.session_id].readings.append(reading)
    return records


def notes_of(session: Session, participant_id: int) -> list[Note]:
    """Every version of every note, oldest first; a page groups them by root."""
    return list(
        session.scalars(
            sa.select(Note).where(Note.participant_id == participant_id).order_by(Note.id)
        )
    )


def adverse_events_of(session: Session, participant_id: int) -> list[AdverseEvent]:
    return list(
        session.scalars(
            sa.select(AdverseEvent)
            .where(AdverseEvent.participant_id == participant_id)
            .order_by(AdverseEvent.onset_at)
        )
    )


def side_effects_of(session: Session, participant_id: int) -> list[SideEffect]:
    return list(
        session.scalars(
            sa.select(SideEffect)
            .where(SideEffect.participant_id == participant_id)
            .order_by(SideEffect.onset_at)
        )
    )


def screens_of(session: Session, participant_id: int) -> list[SuicidalityScreen]:
    return list(
        session.scalars(
            sa.select(SuicidalityScreen)
            .where(SuicidalityScreen.participant_id == participant_id)
            .order_by(SuicidalityScreen.screened_at)
        )
    )


# --- what is due: the dashboard -------------------------------------------------------------


@dataclass(frozen=True)
class DueItem:
    participant: Participant
    what: str
    due_at: datetime | None
    overdue: bool


def sessions_today(
    session: Session, user: User, limit: int = 50
) -> list[tuple[TherapySession, Participant]]:
    """Sessions scheduled for the current UTC day, of participants the user can see."""
    now = utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = session.execute(
        sa.select(TherapySession, Participant)
        .options(without_protocol_text())
        .join(Participant, Participant.id == TherapySession.participant_id)
        .where(
            *visibility(user),
            TherapySession.scheduled_at >= day,
            TherapySession.scheduled_at < day + timedelta(days=1),
        )
        .order_by(TherapySession.scheduled_at)
        .limit(limit)
    )
    return [(s, p) for s, p in rows]


def open_alerts(
    session: Session, user: User, limit: int = 50
) -> list[tuple[VitalSignAlert, Participant]]:
    rows = session.execute(
        sa.select(VitalSignAlert, Participant)
        .options(without_protocol_text())
        .join(TherapySession, TherapySession.id == VitalSignAlert.session_id)
        .join(Participant, Participant.id == TherapySession.participant_id)
        .where(*visibility(user), VitalSignAlert.acknowledged_at.is_(None))
        .order_by(VitalSignAlert.raised_at)
        .limit(limit)
    )
    return [(a, p) for a, p in rows]


def open_adverse_events(
    session: Session, user: User, limit: int = 50
) -> list[tuple[AdverseEvent, Participant]]:
    """Serious events not yet reported, and events not yet assessed by an investigator."""
    rows = session.execute(
        sa.select(AdverseEvent, Participant)
        .options(without_protocol_text())
        .join(Participant, Participant.id == AdverseEvent.participant_id)
        .where(
            *visibility(user),
            sa.or_(
                sa.and_(AdverseEvent.serious.is_(True), AdverseEvent.reported_at.is_(None)),
                AdverseEvent.relatedness.is_(None),
            ),
        )
        .order_by(
            AdverseEvent.report_due_at.is_(None), AdverseEvent.report_due_at, AdverseEvent.onset_at
        )
        .limit(limit)
    )
    return [(e, p) for e, p in rows]


def integration_due(
    session: Session, user: User, hours: int = 24, limit: int = 50
) -> list[DueItem]:
    """Participants in integration whose first integration session of the cycle is not yet
    completed: due within ``hours`` of the end of the cycle's dosing session."""
    # Correlated per participant in integration (few, at one site), each answered by the
    # (participant_id, kind, cycle) index; never an aggregate over the study's sessions.
    ended = (
        sa.select(sa.func.max(TherapySession.ended_at))
        .where(
            TherapySession.participant_id == Participant.id,
            TherapySession.kind == "dosing",
            TherapySession.cycle == Participant.cycle,
            TherapySession.status == "completed",
        )
        .scalar_subquery()
    )
    integrated = sa.exists().where(
        TherapySession.participant_id == Participant.id,
        TherapySession.kind == "integration",
        TherapySession.cycle == Participant.cycle,
        TherapySession.status == "completed",
    )
    rows = session.execute(
        visible_to(user)
        .options(without_protocol_text())
        .add_columns(ended.label("ended"))
        .where(Participant.state == "integration", ended.is_not(None), ~integrated)
        .order_by(sa.literal_column("ended"), Participant.id)
        .limit(limit)
    )
    now = utcnow()
    return [
        DueItem(
            participant=p,
            what="First integration session",
            due_at=ended + timedelta(hours=hours),
            overdue=ended + timedelta(hours=hours) < now,
        )
        for p, ended in rows
    ]


# --- small reads for the pages ----------------------------------------------------------------


def pregnancy_tests_of(session: Session, participant_id: int) -> list[PregnancyTest]:
    return list(
        session.scalars(
            sa.select(PregnancyTest)
            .where(PregnancyTest.participant_id == participant_id)
            .order_by(PregnancyTest.tested_at)
        )
    )


def users_by_id(session: Session, ids: set[int | None]) -> dict[int, User]:
    """The people named on a page's records, in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(wanted)))}


def active_participants(session: Session, user: User, limit: int = 50) -> list[Participant]:
    """The participants the user can see that are not closed (a therapist's: assigned ones)."""
    return list(
        session.scalars(
            visible_to(user)
            .options(without_protocol_text())
            .where(Participant.state.not_in(["completed", "screen_failed", "withdrawn"]))
            .order_by(Participant.study_id)
            .limit(limit)
        )
    )
