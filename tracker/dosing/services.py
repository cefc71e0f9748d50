"""Dosing records: doses held to every dose rule of the protocol, vital signs and the alerts
they raise, the effects checklist. Each function validates every input at once, asks the
protocol core, changes the rows, appends the audit events and flushes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.db import utcnow
from tracker.dosing.models import (
    DoseAdministration,
    SessionEffects,
    VitalSignAlert,
    VitalSignReading,
)
from tracker.dosing.queries import effects_of
from tracker.errors import InvalidInput, NotFound, RuleViolation
from tracker.participants.recording import (
    RECORDING_ROLES,
    not_future,
    raise_problems,
    require_open,
    require_role,
    text_field,
)
from tracker.pharmacy import queries as pharmacy_queries
from tracker.protocol import RecordKind, Role, SessionKind, SessionStatus, reading_problems
from tracker.protocol.accountability import dispensing_number, dose_coverage_problems
from tracker.protocol.dosing import (
    Dose,
    DoseKind,
    Reading,
    breaches,
    dose_problems,
    effects_problems,
)
from tracker.protocol.sessions import unusual_moment
from tracker.sessions.models import TherapySession
from tracker.sessions.services import get_session_for, participant_of
from tracker.study.services import definition_of


def _require_dosing_in_progress(
    row: TherapySession, moment: datetime, what: str, *, time_confirmed: bool = False
) -> list[str]:
    problems = []
    if row.kind != SessionKind.DOSING:
        problems.append(
            f"{what} are recorded in dosing sessions only; this is a {row.kind} session."
        )
    if row.status in (SessionStatus.CANCELLED, SessionStatus.MISSED):
        problems.append(f"The session is {row.status}.")
    if row.started_at is None:
        problems.append("Start the session (give its start) before recording in it.")
    elif moment < row.started_at:
        problems.append(
            f"{what} at {moment:%H:%M} is before the session started ({row.started_at:%H:%M})."
        )
    elif not time_confirmed and (late := unusual_moment(row.started_at, moment, what)):
        problems.append(late)
    if row.ended_at is not None and moment > row.ended_at:
        problems.append(
            f"{what} at {moment:%H:%M} is after the session ended ({row.ended_at:%H:%M})."
        )
    return problems


def _latest_reading(db: Session, row: TherapySession, before: datetime) -> VitalSignReading | None:
    return db.scalar(
        sa.select(VitalSignReading)
        .where(VitalSignReading.session_id == row.id, VitalSignReading.measured_at <= before)
        .order_by(VitalSignReading.measured_at.desc())
        .limit(1)
    )


def _covering_dispensing(
    db: Session,
    row: TherapySession,
    site_id: int,
    amount_mg: int,
    dispensing_id: int | None,
    refusals: list[str],
) -> int | None:
    """The dispensing that covers the dose, or None at a site that keeps no ledger here;
    why not in ``refusals``. The lot is locked, so two doses cannot both take its last mg."""
    if dispensing_id is None and not pharmacy_queries.keeps_ledger(db, site_id):
        return None
    standing = [d for d in pharmacy_queries.dispensings_for(db, row.id) if not d.corrected]
    if dispensing_id is None:
        fitting = [d for d in standing if not dose_coverage_problems(amount_mg, d.use, d.number)]
        if not standing:
            refusals.append(
                "No dispensing for this session covers the dose: the pharmacist dispenses the "
                "product for the session first."
            )
            return None
        if len(standing) == 1:
            fitting = standing  # the session's one dispensing: say why it does not cover it
        if len(fitting) != 1:
            refusals.append(
                "Name the dispensing that covers the dose: "
                + ", ".join(f"{d.number} ({d.use.available_mg:g} mg left)" for d in standing)
                + "."
            )
            return None
        chosen = fitting[0]
    else:
        found = next((d for d in standing if d.id == dispensing_id), None)
        if found is None:
            refusals.append(
                f"Dispensing {dispensing_number(dispensing_id)} is not a dispensing for this "
                "session."
            )
            return None
        chosen = found
    pharmacy_queries.lock_lot(db, chosen.lot_id)
    again = pharmacy_queries.dispensing(db, chosen.id)
    if again is None or again.corrected:  # reversed while this request waited for the lot
        refusals.append(f"Dispensing {chosen.number} was reversed: it covers no dose.")
        return None
    problems = dose_coverage_problems(amount_mg, again.use, again.number)
    refusals.extend(problems)
    return None if problems else chosen.id


def record_dose(
    db: Session,
    actor: Actor,
    row: TherapySession,
    *,
    administered_at: datetime,
    amount_mg: int,
    kind: str,
    breach_justification: str | None = None,
    dispensing_id: int | None = None,
    time_confirmed: bool = False,
) -> DoseAdministration:
    """A dose administration, held to every dose rule of the protocol (SPEC §2) and, at a site
    that keeps its Schedule I record here, covered by a dispensing for the session (SPEC §12):
    named, or the session's only dispensing that covers it."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant_of(db, row), RecordKind.DOSE)
    problems: list[str] = []
    try:
        dose_kind = DoseKind(kind)
    except ValueError:
        raise InvalidInput(f"A dose is initial or supplemental, not {kind!r}.") from None
    not_future(administered_at, "The time of the dose", problems)
    problems += _require_dosing_in_progress(
        row, administered_at, "A dose", time_confirmed=time_confirmed
    )
    justification = text_field(breach_justification, "The justification", problems, required=False)
    if justification and actor.role != Role.INVESTIGATOR.value:
        problems.append(
            "Only an investigator can document why a supplemental dose is safe despite a breach."
        )
    raise_problems(problems, "The dose was not recorded")

    participant = participant_of(db, row)
    protocol = definition_of(participant.protocol_version)
    given = [
        Dose(DoseKind(d.kind), d.amount_mg, d.administered_at)
        for d in db.scalars(
            sa.select(DoseAdministration).where(DoseAdministration.session_id == row.id)
        )
    ]
    latest = _latest_reading(db, row, administered_at)
    reading = (
        None
        if latest is None
        else Reading(
            latest.measured_at,
            latest.systolic,
            latest.diastolic,
            latest.heart_rate,
            latest.temperature_c,
        )
    )
    refusals = dose_problems(
        Dose(dose_kind, amount_mg, administered_at),
        given,
        protocol,
        latest_reading=reading,
        breach_justified=bool(justification),
    )
    problems = list(refusals)
    covering = _covering_dispensing(
        db, row, participant.site_id, amount_mg, dispensing_id, problems
    )
    if problems:
        raise RuleViolation("The dose is refused: " + " ".join(problems), problems)
    dose = DoseAdministration(
        session_id=row.id,
        kind=dose_kind.value,
        amount_mg=amount_mg,
        administered_at=administered_at,
        recorded_by_id=actor.user_id,
        breach_justification=justification,
        justified_by_id=actor.user_id if justification else None,
        dispensing_id=covering,
    )
    db.add(dose)
    db.flush()
    record_event(
        db,
        actor,
        "dose.record",
        "session",
        row.id,
        new={
            "participant": participant.study_id,
            "kind": dose.kind,
            "amount_mg": amount_mg,
            "administered_at": administered_at,
            "breach_justification": justification,
            "dispensing": None if covering is None else dispensing_number(covering),
        },
    )
    return dose


def record_vital_signs(
    db: Session,
    actor: Actor,
    row: TherapySession,
    *,
    measured_at: datetime,
    systolic: int,
    diastolic: int,
    heart_rate: int,
    temperature_c: float,
    time_confirmed: bool = False,
) -> VitalSignReading:
    """A vital-sign reading; each threshold it reaches raises an alert to acknowledge. A
    reading more than a day after the session's start needs ``time_confirmed``."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant_of(db, row), RecordKind.VITAL_SIGNS)
    problems: list[str] = []
    not_future(measured_at, "The time of the reading", problems)
    problems += _require_dosing_in_progress(
        row, measured_at, "A reading", time_confirmed=time_confirmed
    )
    problems += reading_problems(systolic, diastolic, heart_rate, temperature_c)
    raise_problems(problems, "The reading was not recorded")
    participant = participant_of(db, row)
    protocol = definition_of(participant.protocol_version)
    reading = VitalSignReading(
        session_id=row.id,
        measured_at=measured_at,
        systolic=systolic,
        diastolic=diastolic,
        heart_rate=heart_rate,
        temperature_c=round(float(temperature_c), 1),
        recorded_by_id=actor.user_id,
    )
    db.add(reading)
    db.flush()
    found = breaches(
        Reading(measured_at, systolic, diastolic, heart_rate, reading.temperature_c), protocol
    )
    for breach in found:
        db.add(
            VitalSignAlert(
                reading_id=reading.id,
                session_id=row.id,
                sign=breach.sign.value,
                value=breach.value,
                threshold=breach.threshold,
            )
        )
    db.flush()
    db.refresh(reading)
    record_event(
        db,
        actor,
        "vitals.record",
        "session",
        row.id,
        new={
            "participant": participant.study_id,
            "measured_at": measured_at,
            "systolic": systolic,
            "diastolic": diastolic,
            "heart_rate": heart_rate,
            "temperature_c": reading.temperature_c,
            "alerts": [b.sign.value for b in found],
        },
    )
    return reading


def acknowledge_alert(
    db: Session, actor: Actor, alert: VitalSignAlert, note: str
) -> VitalSignAlert:
    """Someone has seen the breach and says what was done; the note is required."""
    require_role(actor, *RECORDING_ROLES)
    problems: list[str] = []
    text = text_field(note, "The acknowledgement note", problems)
    if alert.acknowledged_at is not None:
        problems.append("The alert is already acknowledged.")
    raise_problems(problems, "The alert was not acknowledged")
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by_id = actor.user_id
    alert.acknowledgement = text
    db.flush()
    record_event(
        db,
        actor,
        "alert.acknowledge",
        "session",
        alert.session_id,
        new={"alert": alert.id, "sign": alert.sign, "value": alert.value, "note": text},
    )
    return alert


def get_alert(db: Session, user: User, alert_id: int) -> VitalSignAlert:
    alert = db.get(VitalSignAlert, alert_id)
    if alert is None:
        raise NotFound(f"No alert {alert_id}.")
    get_session_for(db, user, alert.session_id)
    return alert


def record_effects(
    db: Session,
    actor: Actor,
    row: TherapySession,
    *,
    effects: Sequence[str],
    none_observed: bool,
    note: str | None = None,
) -> SessionEffects:
    """The effects checklist of a dosing session (pleasant and abuse-related effects included)."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant_of(db, row), RecordKind.EFFECTS)
    problems = list(effects_problems(list(effects), none_observed))
    if row.kind != SessionKind.DOSING:
        problems.append("The effects checklist belongs to dosing sessions.")
    text = text_field(note, "The note", problems, required=False)
    raise_problems(problems, "The effects were not recorded")
    existing = effects_of(db, row.id)
    old = None
    if existing is None:
        existing = SessionEffects(
            session_id=row.id,
            effects=sorted(effects),
            none_observed=none_observed,
            note=text,
            recorded_by_id=actor.user_id,
        )
        db.add(existing)
    else:
        old = {
            "effects": existing.effects,
            "none_observed": existing.none_observed,
            "note": existing.note,
        }
        existing.effects, existing.none_observed, existing.note = (
            sorted(effects),
            none_observed,
            text,
        )
        existing.recorded_by_id, existing.recorded_at = actor.user_id, utcnow()  # type: ignore[assignment]
    db.flush()
    record_event(
        db,
        actor,
        "effects.record",
        "session",
        row.id,
        old=old,
        new={"effects": sorted(effects), "none_observed": none_observed, "note": text},
    )
    return existing
