"""Reading dosing records, in a fixed number of queries per page."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from tracker.auth.models import User
from tracker.dosing.models import (
    DoseAdministration,
    SessionEffects,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.participants.models import Participant
from tracker.participants.queries import visibility, without_protocol_text
from tracker.sessions.models import TherapySession


@dataclass(frozen=True)
class DosingRecord:
    """What a dosing session recorded: doses, readings with their alerts, the effects checklist."""

    doses: list[DoseAdministration]
    readings: list[VitalSignReading]
    effects: SessionEffects | None = None

    @property
    def open_alerts(self) -> list[VitalSignAlert]:
        return [a for r in self.readings for a in r.alerts if a.acknowledged_at is None]


def effects_of(db: Session, session_id: int) -> SessionEffects | None:
    return db.scalar(sa.select(SessionEffects).where(SessionEffects.session_id == session_id))


def dosing_record(db: Session, row: TherapySession) -> DosingRecord:
    """One dosing session's doses, readings and effects checklist (the session page's)."""
    return dosing_records_of(db, [row.id])[row.id]


def dosing_records_of(db: Session, session_ids: list[int]) -> dict[int, DosingRecord]:
    """The doses, the effects checklist and the readings (with their alerts) of several
    dosing sessions, in two queries whatever their number: the doses and the checklist are
    outer-joined onto the sessions (one checklist per session, so one row per dose)."""
    if not session_ids:
        return {}
    doses: dict[int, list[DoseAdministration]] = {i: [] for i in session_ids}
    effects: dict[int, SessionEffects | None] = dict.fromkeys(session_ids)
    readings: dict[int, list[VitalSignReading]] = {i: [] for i in session_ids}
    rows = db.execute(
        sa.select(TherapySession.id, DoseAdministration, SessionEffects)
        .select_from(TherapySession)
        .outerjoin(DoseAdministration, DoseAdministration.session_id == TherapySession.id)
        .outerjoin(SessionEffects, SessionEffects.session_id == TherapySession.id)
        .where(TherapySession.id.in_(session_ids))
        .order_by(TherapySession.id, DoseAdministration.administered_at, DoseAdministration.id)
    )
    for session_id, dose, checklist in rows:
        if dose is not None:
            doses[session_id].append(dose)
        effects[session_id] = checklist
    for reading in db.scalars(
        sa.select(VitalSignReading)
        .options(joinedload(VitalSignReading.alerts))
        .where(VitalSignReading.session_id.in_(session_ids))
        .order_by(VitalSignReading.measured_at, VitalSignReading.id)
    ).unique():
        readings[reading.session_id].append(reading)
    return {
        i: DosingRecord(doses=doses[i], readings=readings[i], effects=effects[i])
        for i in session_ids
    }


def open_alerts(
    db: Session, user: User, limit: int = 50
) -> list[tuple[VitalSignAlert, Participant]]:
    rows = db.execute(
        sa.select(VitalSignAlert, Participant)
        .options(without_protocol_text())
        .join(TherapySession, TherapySession.id == VitalSignAlert.session_id)
        .join(Participant, Participant.id == TherapySession.participant_id)
        .where(*visibility(user), VitalSignAlert.acknowledged_at.is_(None))
        .order_by(VitalSignAlert.raised_at)
        .limit(limit)
    )
    return [(a, p) for a, p in rows]
