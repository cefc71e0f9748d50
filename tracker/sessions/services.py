"""Therapist workflow: sessions, dosing records, safety records and notes.

Each function validates every input at once (InvalidInput lists each problem), asks the
protocol core where a rule applies (RuleViolation lists each reason), changes the rows,
appends the audit events and flushes. Automatic safety holds happen in the same transaction
as the finding that raises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.db import utcnow
from tracker.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.services import ensure_therapist_assigned
from tracker.participants.transitions import place_on_automatic_hold
from tracker.protocol import (
    SESSION_KIND_FOR_STATE,
    RecordKind,
    Role,
    SessionChange,
    SessionStatus,
    State,
    closed_record_refusal,
    reading_problems,
    session_change_problems,
)
from tracker.protocol.dosing import (
    AdverseEventOutcome,
    Dose,
    DoseKind,
    Reading,
    Relatedness,
    SeriousCriterion,
    Severity,
    breaches,
    dose_problems,
    effects_problems,
    serious_report_due,
    suicidality_positive,
)
from tracker.sessions.models import (
    SESSION_KINDS,
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
from tracker.study.services import definition_of

RECORDING_ROLES = (Role.THERAPIST, Role.COORDINATOR, Role.INVESTIGATOR)
MAX_TEXT = 5000
MAX_TERM = 200


def _require_open(participant: Participant, kind: RecordKind) -> None:
    """A closed participant takes no new record (the rule is the protocol core's)."""
    refusal = closed_record_refusal(State(participant.state), kind, participant.study_id)
    if refusal is not None:
        raise RuleViolation(refusal, [refusal])


def _require_role(actor: Actor, *roles: Role) -> None:
    if actor.role not in {r.value for r in roles}:
        raise PermissionDenied(f"The {actor.role} role may not do this.")


def _text(
    value: str | None,
    field: str,
    problems: list[str],
    *,
    required: bool = True,
    limit: int = MAX_TEXT,
) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            problems.append(f"{field} is required.")
        return None
    if len(text) > limit:
        problems.append(f"{field} is longer than {limit} characters.")
    return text


def _not_future(moment: datetime | None, field: str, problems: list[str]) -> None:
    if moment is not None and moment > utcnow():
        problems.append(f"{field} cannot be in the future.")


def _raise(problems: list[str], what: str) -> None:
    if problems:
        raise InvalidInput(f"{what}: " + " ".join(problems), problems)


def get_session_and_participant_for(
    session: Session, user: User, session_id: int
) -> tuple[TherapySession, Participant]:
    """A session of a participant the user can see, with that participant; anything else is
    a 404."""
    found = session.execute(
        participant_queries.visible_to(user)
        .add_columns(TherapySession)
        .join(TherapySession, TherapySession.participant_id == Participant.id)
        .where(TherapySession.id == session_id)
        .options(joinedload(TherapySession.effects))
    ).one_or_none()
    if found is None:
        raise NotFound(f"No session {session_id} that you can see.")
    participant, row = found
    return row, participant


def get_session_for(session: Session, user: User, session_id: int) -> TherapySession:
    """A session of a participant the user can see; anything else is a 404."""
    return get_session_and_participant_for(session, user, session_id)[0]


def _participant_of(session: Session, therapy_session: TherapySession) -> Participant:
    participant = session.get(Participant, therapy_session.participant_id)
    assert participant is not None
    return participant


def _therapists(session: Session, participant: Participant, usernames: Sequence[str]) -> list[User]:
    names = sorted({n.strip().lower() for n in usernames if n and n.strip()})
    users = {
        u.username: u for u in session.scalars(sa.select(User).where(User.username.in_(names)))
    }
    problems = []
    for name in names:
        user = users.get(name)
        if user is None or user.site_id != participant.site_id or user.role != Role.THERAPIST.value:
            problems.append(f"No therapist {name!r} at site {participant.site.code}.")
        elif not user.is_active:
            problems.append(f"{name} is disabled.")
    _raise(problems, "The therapists are not valid")
    return [users[n] for n in names]


# --- sessions -----------------------------------------------------------------------------


def schedule_session(
    session: Session,
    actor: Actor,
    participant: Participant,
    *,
    kind: str,
    scheduled_at: datetime,
    therapists: Sequence[str] = (),
) -> TherapySession:
    """Schedule a session of the kind the participant's state allows, in the current cycle.
    Naming a therapist assigns them to the participant too."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(participant, RecordKind.SESSION)
    if kind not in SESSION_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(SESSION_KINDS)}, not {kind!r}.")
    state = State(participant.state)
    allowed = SESSION_KIND_FOR_STATE.get(state)
    if allowed != kind:
        where = state.value.replace("_", " ")
        reason = (
            f"A {kind} session cannot be scheduled while {participant.study_id} is in {where}"
            + (f"; only {allowed} sessions can." if allowed else "; no sessions can.")
        )
        raise RuleViolation(reason, [reason])
    if kind == "dosing":
        existing = session.scalar(
            sa.select(TherapySession.id).where(
                TherapySession.participant_id == participant.id,
                TherapySession.kind == "dosing",
                TherapySession.cycle == participant.cycle,
                TherapySession.status.in_(["scheduled", "completed"]),
            )
        )
        if existing is not None:
            reason = f"Cycle {participant.cycle} already has a dosing session (#{existing})."
            raise RuleViolation(reason, [reason])
    people = _therapists(session, participant, therapists)
    row = TherapySession(
        participant_id=participant.id,
        kind=kind,
        cycle=participant.cycle,
        scheduled_at=scheduled_at,
        status="scheduled",
        created_by_id=actor.user_id,
        therapists=people,
    )
    session.add(row)
    session.flush()
    for therapist in people:
        ensure_therapist_assigned(session, actor, participant, therapist)
    record_event(
        session,
        actor,
        "session.schedule",
        "session",
        row.id,
        new={
            "participant": participant.study_id,
            "kind": kind,
            "cycle": row.cycle,
            "scheduled_at": scheduled_at,
            "therapists": [u.username for u in people],
        },
    )
    return row


def _session_values(row: TherapySession) -> dict[str, object]:
    return {
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "status": row.status,
        "overnight_stay": row.overnight_stay,
        "therapists": [u.username for u in row.therapists],
    }


UNSET: object = object()


def _recorded_span(
    session: Session, row: TherapySession
) -> tuple[datetime | None, datetime | None]:
    """The first and the last moment recorded in the session (readings and doses)."""
    readings = session.execute(
        sa.select(
            sa.func.min(VitalSignReading.measured_at), sa.func.max(VitalSignReading.measured_at)
        ).where(VitalSignReading.session_id == row.id)
    ).one()
    doses = session.execute(
        sa.select(
            sa.func.min(DoseAdministration.administered_at),
            sa.func.max(DoseAdministration.administered_at),
        ).where(DoseAdministration.session_id == row.id)
    ).one()
    earliest = min([t for t in (readings[0], doses[0]) if t is not None], default=None)
    latest = max([t for t in (readings[1], doses[1]) if t is not None], default=None)
    return earliest, latest


def update_session(
    session: Session,
    actor: Actor,
    row: TherapySession,
    *,
    started_at: datetime | object | None = UNSET,
    ended_at: datetime | object | None = UNSET,
    status: str | object = UNSET,
    overnight_stay: bool | object | None = UNSET,
    therapists: Sequence[str] | object = UNSET,
) -> TherapySession:
    """Start, end, complete, cancel or mark missed; record the overnight stay and the
    therapists present. Times are checked: none in the future, the end after the start, and
    no recorded reading or dose outside the session."""
    _require_role(actor, *RECORDING_ROLES)
    participant = _participant_of(session, row)
    _require_open(participant, RecordKind.SESSION)
    before = _session_values(row)
    new_start = cast("datetime | None", row.started_at if started_at is UNSET else started_at)
    new_end = cast("datetime | None", row.ended_at if ended_at is UNSET else ended_at)
    new_status = str(row.status if status is UNSET else status)
    recorded_from, recorded_until = (
        _recorded_span(session, row)
        if new_start is not None or new_end is not None
        else (None, None)
    )
    problems = session_change_problems(
        SessionChange(
            status=SessionStatus(row.status),
            new_status=new_status,
            started_at=new_start,
            ended_at=new_end,
            recorded_from=recorded_from,
            recorded_until=recorded_until,
            now=utcnow(),
        )
    )
    people: list[User] | None = None
    if therapists is not UNSET:
        people = _therapists(session, participant, therapists)  # type: ignore[arg-type]
    _raise(problems, "The session was not changed")

    row.started_at = new_start
    row.ended_at = new_end
    row.status = new_status
    if overnight_stay is not UNSET:
        row.overnight_stay = overnight_stay  # type: ignore[assignment]
    if people is not None:
        row.therapists = people
        for therapist in people:
            ensure_therapist_assigned(session, actor, participant, therapist)
    session.flush()
    after = _session_values(row)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        record_event(
            session,
            actor,
            "session.update",
            "session",
            row.id,
            old={k: before[k] for k in changed},
            new={k: after[k] for k in changed},
        )
    return row


def _require_dosing_in_progress(row: TherapySession, moment: datetime, what: str) -> list[str]:
    problems = []
    if row.kind != "dosing":
        problems.append(
            f"{what} are recorded in dosing sessions only; this is a {row.kind} session."
        )
    if row.status in ("cancelled", "missed"):
        problems.append(f"The session is {row.status}.")
    if row.started_at is None:
        problems.append("Start the session (started_at) before recording in it.")
    elif moment < row.started_at:
        problems.append(
            f"{what} at {moment:%H:%M} is before the session started ({row.started_at:%H:%M})."
        )
    if row.ended_at is not None and moment > row.ended_at:
        problems.append(
            f"{what} at {moment:%H:%M} is after the session ended ({row.ended_at:%H:%M})."
        )
    return problems


# --- dosing records -------------------------------------------------------------------------


def _latest_reading(
    session: Session, row: TherapySession, before: datetime
) -> VitalSignReading | None:
    return session.scalar(
        sa.select(VitalSignReading)
        .where(VitalSignReading.session_id == row.id, VitalSignReading.measured_at <= before)
        .order_by(VitalSignReading.measured_at.desc())
        .limit(1)
    )


def record_dose(
    session: Session,
    actor: Actor,
    row: TherapySession,
    *,
    administered_at: datetime,
    amount_mg: int,
    kind: str,
    breach_justification: str | None = None,
) -> DoseAdministration:
    """A dose administration, held to every dose rule of the protocol (SPEC §2)."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(_participant_of(session, row), RecordKind.DOSE)
    problems: list[str] = []
    try:
        dose_kind = DoseKind(kind)
    except ValueError:
        raise InvalidInput(f"kind must be initial or supplemental, not {kind!r}.") from None
    _not_future(administered_at, "administered_at", problems)
    problems += _require_dosing_in_progress(row, administered_at, "A dose")
    justification = _text(breach_justification, "The justification", problems, required=False)
    if justification and actor.role != Role.INVESTIGATOR.value:
        problems.append(
            "Only an investigator can document why a supplemental dose is safe despite a breach."
        )
    _raise(problems, "The dose was not recorded")

    participant = _participant_of(session, row)
    protocol = definition_of(participant.protocol_version)
    given = [
        Dose(DoseKind(d.kind), d.amount_mg, d.administered_at)
        for d in session.scalars(
            sa.select(DoseAdministration).where(DoseAdministration.session_id == row.id)
        )
    ]
    latest = _latest_reading(session, row, administered_at)
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
    if refusals:
        raise RuleViolation("The dose is refused: " + " ".join(refusals), list(refusals))
    dose = DoseAdministration(
        session_id=row.id,
        kind=dose_kind.value,
        amount_mg=amount_mg,
        administered_at=administered_at,
        recorded_by_id=actor.user_id,
        breach_justification=justification,
        justified_by_id=actor.user_id if justification else None,
    )
    session.add(dose)
    session.flush()
    record_event(
        session,
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
        },
    )
    return dose


def record_vital_signs(
    session: Session,
    actor: Actor,
    row: TherapySession,
    *,
    measured_at: datetime,
    systolic: int,
    diastolic: int,
    heart_rate: int,
    temperature_c: float,
) -> VitalSignReading:
    """A vital-sign reading; each threshold it reaches raises an alert to acknowledge."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(_participant_of(session, row), RecordKind.VITAL_SIGNS)
    problems: list[str] = []
    _not_future(measured_at, "measured_at", problems)
    problems += _require_dosing_in_progress(row, measured_at, "A reading")
    problems += reading_problems(systolic, diastolic, heart_rate, temperature_c)
    _raise(problems, "The reading was not recorded")
    participant = _participant_of(session, row)
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
    session.add(reading)
    session.flush()
    found = breaches(
        Reading(measured_at, systolic, diastolic, heart_rate, reading.temperature_c), protocol
    )
    for breach in found:
        session.add(
            VitalSignAlert(
                reading_id=reading.id,
                session_id=row.id,
                sign=breach.sign.value,
                value=breach.value,
                threshold=breach.threshold,
            )
        )
    session.flush()
    session.refresh(reading)
    record_event(
        session,
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
    session: Session, actor: Actor, alert: VitalSignAlert, note: str
) -> VitalSignAlert:
    """Someone has seen the breach and says what was done; the note is required."""
    _require_role(actor, *RECORDING_ROLES)
    problems: list[str] = []
    text = _text(note, "The acknowledgement note", problems)
    if alert.acknowledged_at is not None:
        problems.append("The alert is already acknowledged.")
    _raise(problems, "The alert was not acknowledged")
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by_id = actor.user_id
    alert.acknowledgement = text
    session.flush()
    record_event(
        session,
        actor,
        "alert.acknowledge",
        "session",
        alert.session_id,
        new={"alert": alert.id, "sign": alert.sign, "value": alert.value, "note": text},
    )
    return alert


def get_alert(session: Session, user: User, alert_id: int) -> VitalSignAlert:
    alert = session.get(VitalSignAlert, alert_id)
    if alert is None:
        raise NotFound(f"No alert {alert_id}.")
    get_session_for(session, user, alert.session_id)
    return alert


def record_effects(
    session: Session,
    actor: Actor,
    row: TherapySession,
    *,
    effects: Sequence[str],
    none_observed: bool,
    note: str | None = None,
) -> SessionEffects:
    """The effects checklist of a dosing session (pleasant and abuse-related effects included)."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(_participant_of(session, row), RecordKind.EFFECTS)
    problems = list(effects_problems(list(effects), none_observed))
    if row.kind != "dosing":
        problems.append("The effects checklist belongs to dosing sessions.")
    text = _text(note, "The note", problems, required=False)
    _raise(problems, "The effects were not recorded")
    existing = row.effects
    old = None
    if existing is None:
        existing = SessionEffects(
            session_id=row.id,
            effects=sorted(effects),
            none_observed=none_observed,
            note=text,
            recorded_by_id=actor.user_id,
        )
        session.add(existing)
        row.effects = existing
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
    session.flush()
    record_event(
        session,
        actor,
        "effects.record",
        "session",
        row.id,
        old=old,
        new={"effects": sorted(effects), "none_observed": none_observed, "note": text},
    )
    return existing


# --- safety ---------------------------------------------------------------------------------


def _session_of_participant(
    session: Session, participant: Participant, session_id: int | None
) -> None:
    if session_id is None:
        return
    row = session.get(TherapySession, session_id)
    if row is None or row.participant_id != participant.id:
        raise InvalidInput(f"Session {session_id} is not a session of {participant.study_id}.")


def record_side_effect(
    session: Session,
    actor: Actor,
    participant: Participant,
    *,
    term: str,
    severity: str,
    onset_at: datetime,
    resolved_at: datetime | None = None,
    session_id: int | None = None,
) -> SideEffect:
    _require_role(actor, *RECORDING_ROLES)
    _require_open(participant, RecordKind.SIDE_EFFECT)
    problems: list[str] = []
    term_text = _text(term, "The term", problems, limit=MAX_TERM)
    if severity not in {s.value for s in Severity}:
        problems.append("severity must be mild, moderate or severe.")
    _not_future(onset_at, "onset_at", problems)
    _not_future(resolved_at, "resolved_at", problems)
    if resolved_at is not None and resolved_at < onset_at:
        problems.append("resolved_at must not be before onset_at.")
    _raise(problems, "The side effect was not recorded")
    _session_of_participant(session, participant, session_id)
    row = SideEffect(
        participant_id=participant.id,
        session_id=session_id,
        term=term_text or "",
        severity=severity,
        onset_at=onset_at,
        resolved_at=resolved_at,
        recorded_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor,
        "side_effect.record",
        "participant",
        participant.study_id,
        new={
            "id": row.id,
            "term": row.term,
            "severity": severity,
            "onset_at": onset_at,
            "resolved_at": resolved_at,
        },
    )
    return row


def record_adverse_event(
    session: Session,
    actor: Actor,
    participant: Participant,
    *,
    term: str,
    onset_at: datetime,
    grade: int,
    serious: bool,
    serious_criteria: Sequence[str] = (),
    description: str | None = None,
    aware_at: datetime | None = None,
    session_id: int | None = None,
) -> AdverseEvent:
    """An adverse event. A serious one places the participant on hold in this transaction and
    is due for report 24 h after the site became aware of it."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(participant, RecordKind.ADVERSE_EVENT)
    problems: list[str] = []
    term_text = _text(term, "The term", problems, limit=MAX_TERM)
    text = _text(description, "The description", problems, required=False)
    aware = aware_at or utcnow()
    _not_future(onset_at, "onset_at", problems)
    _not_future(aware, "aware_at", problems)
    if aware < onset_at:
        problems.append("aware_at cannot be before onset_at.")
    if not isinstance(grade, int) or not 1 <= grade <= 5:
        problems.append("grade must be a CTCAE grade from 1 to 5.")
    known = {c.value for c in SeriousCriterion}
    unknown = [c for c in serious_criteria if c not in known]
    if unknown:
        problems.append(
            f"Unknown seriousness criteria: {', '.join(unknown)}; use {', '.join(sorted(known))}."
        )
    if serious and not serious_criteria:
        problems.append("A serious adverse event needs at least one seriousness criterion.")
    if not serious and serious_criteria:
        problems.append("Seriousness criteria apply only to a serious adverse event.")
    if grade == 5 and "death" not in serious_criteria:
        problems.append("A grade 5 event is fatal: mark it serious with the criterion 'death'.")
    _raise(problems, "The adverse event was not recorded")
    _session_of_participant(session, participant, session_id)
    row = AdverseEvent(
        participant_id=participant.id,
        session_id=session_id,
        term=term_text or "",
        description=text,
        onset_at=onset_at,
        aware_at=aware,
        grade=grade,
        serious=serious,
        serious_criteria=sorted(set(serious_criteria)),
        outcome=AdverseEventOutcome.ONGOING.value,
        report_due_at=serious_report_due(aware) if serious else None,
        recorded_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor,
        "adverse_event.record",
        "participant",
        participant.study_id,
        new={
            "id": row.id,
            "term": row.term,
            "grade": grade,
            "serious": serious,
            "serious_criteria": row.serious_criteria,
            "onset_at": onset_at,
            "report_due_at": row.report_due_at,
        },
    )
    if serious:
        place_on_automatic_hold(
            session,
            actor,
            participant,
            f"serious adverse event #{row.id} ({row.term}, grade {grade})",
        )
    return row


def get_adverse_event(session: Session, user: User, event_id: int) -> AdverseEvent:
    row = session.get(AdverseEvent, event_id)
    if row is None:
        raise NotFound(f"No adverse event {event_id}.")
    participant_queries.get_participant(session, user, row.participant_id)
    return row


def assess_adverse_event(
    session: Session,
    actor: Actor,
    event: AdverseEvent,
    *,
    relatedness: str,
    expected: bool,
    note: str | None = None,
) -> AdverseEvent:
    """The investigator's assessment of relatedness and expectedness."""
    _require_role(actor, Role.INVESTIGATOR)
    problems: list[str] = []
    if relatedness not in {r.value for r in Relatedness}:
        problems.append(
            "relatedness must be one of " + ", ".join(r.value for r in Relatedness) + "."
        )
    text = _text(note, "The note", problems, required=False)
    _raise(problems, "The assessment was not recorded")
    old = {"relatedness": event.relatedness, "expected": event.expected}
    event.relatedness, event.expected, event.assessment_note = relatedness, expected, text
    event.assessed_by_id, event.assessed_at = actor.user_id, utcnow()
    session.flush()
    record_event(
        session,
        actor,
        "adverse_event.assess",
        "adverse_event",
        event.id,
        old=old,
        new={"relatedness": relatedness, "expected": expected, "note": text},
    )
    return event


def update_adverse_event(
    session: Session,
    actor: Actor,
    event: AdverseEvent,
    *,
    outcome: str | None = None,
    resolved_at: datetime | None = None,
    reported_at: datetime | None = None,
) -> AdverseEvent:
    """Follow-up: outcome, resolution, and when a serious event was reported."""
    _require_role(actor, *RECORDING_ROLES)
    problems: list[str] = []
    if outcome is not None and outcome not in {o.value for o in AdverseEventOutcome}:
        problems.append(
            "outcome must be one of " + ", ".join(o.value for o in AdverseEventOutcome) + "."
        )
    _not_future(resolved_at, "resolved_at", problems)
    _not_future(reported_at, "reported_at", problems)
    if resolved_at is not None and resolved_at < event.onset_at:
        problems.append("resolved_at must not be before onset_at.")
    if reported_at is not None and not event.serious:
        problems.append("Only a serious adverse event has an expedited report.")
    if reported_at is not None and reported_at < event.aware_at:
        problems.append("reported_at cannot be before the site became aware of the event.")
    _raise(problems, "The adverse event was not changed")
    old = {
        "outcome": event.outcome,
        "resolved_at": event.resolved_at,
        "reported_at": event.reported_at,
    }
    if outcome is not None:
        event.outcome = outcome
    if resolved_at is not None:
        event.resolved_at = resolved_at
    if reported_at is not None:
        event.reported_at = reported_at
    session.flush()
    new = {
        "outcome": event.outcome,
        "resolved_at": event.resolved_at,
        "reported_at": event.reported_at,
    }
    changed = [k for k in new if new[k] != old[k]]
    if changed:
        record_event(
            session,
            actor,
            "adverse_event.update",
            "adverse_event",
            event.id,
            old={k: old[k] for k in changed},
            new={k: new[k] for k in changed},
        )
    return event


def record_suicidality_screen(
    session: Session,
    actor: Actor,
    participant: Participant,
    *,
    ideation: bool,
    intent: bool,
    plan: bool,
    behaviour: bool,
    screened_at: datetime | None = None,
    session_id: int | None = None,
) -> SuicidalityScreen:
    """A C-SSRS style screen; a positive one places the participant on hold at once."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(participant, RecordKind.SUICIDALITY_SCREEN)
    problems: list[str] = []
    moment = screened_at or utcnow()
    _not_future(moment, "screened_at", problems)
    _raise(problems, "The screen was not recorded")
    _session_of_participant(session, participant, session_id)
    positive = suicidality_positive(ideation, intent, plan, behaviour)
    row = SuicidalityScreen(
        participant_id=participant.id,
        session_id=session_id,
        screened_at=moment,
        ideation=ideation,
        intent=intent,
        plan=plan,
        behaviour=behaviour,
        positive=positive,
        recorded_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor,
        "suicidality_screen.record",
        "participant",
        participant.study_id,
        new={
            "id": row.id,
            "ideation": ideation,
            "intent": intent,
            "plan": plan,
            "behaviour": behaviour,
            "positive": positive,
        },
    )
    if positive:
        place_on_automatic_hold(
            session, actor, participant, f"positive suicidality screen #{row.id}"
        )
    return row


def record_pregnancy_test(
    session: Session,
    actor: Actor,
    participant: Participant,
    *,
    tested_at: datetime,
    result: str,
) -> PregnancyTest:
    _require_role(actor, *RECORDING_ROLES)
    _require_open(participant, RecordKind.PREGNANCY_TEST)
    problems: list[str] = []
    if result not in ("negative", "positive"):
        problems.append("result must be negative or positive.")
    _not_future(tested_at, "tested_at", problems)
    _raise(problems, "The pregnancy test was not recorded")
    row = PregnancyTest(
        participant_id=participant.id,
        tested_at=tested_at,
        result=result,
        recorded_by_id=actor.user_id,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor,
        "pregnancy_test.record",
        "participant",
        participant.study_id,
        new={"tested_at": tested_at, "result": result},
    )
    return row


# --- notes ----------------------------------------------------------------------------------


def add_note(
    session: Session,
    actor: Actor,
    participant: Participant,
    text: str,
    *,
    session_id: int | None = None,
) -> Note:
    """A new note (plain text; always rendered escaped)."""
    _require_role(actor, *RECORDING_ROLES)
    _require_open(participant, RecordKind.NOTE)
    problems: list[str] = []
    body = _text(text, "The note", problems)
    _raise(problems, "The note was not saved")
    _session_of_participant(session, participant, session_id)
    note = Note(
        participant_id=participant.id,
        session_id=session_id,
        version=1,
        text=body or "",
        author_id=actor.user_id,
    )
    session.add(note)
    session.flush()
    record_event(
        session,
        actor,
        "note.add",
        "participant",
        participant.study_id,
        new={"note": note.id, "session": session_id, "text": body},
    )
    return note


def amend_note(session: Session, actor: Actor, note: Note, text: str, reason: str) -> Note:
    """A correction: a new version of the note with a reason; earlier versions stay as written."""
    _require_role(actor, *RECORDING_ROLES)
    problems: list[str] = []
    body = _text(text, "The corrected text", problems)
    why = _text(reason, "The reason for the correction", problems, limit=2000)
    root_id = note.root_id or note.id
    latest = session.scalar(
        sa.select(Note)
        .where(sa.or_(Note.id == root_id, Note.root_id == root_id))
        .order_by(Note.version.desc())
        .limit(1)
    )
    assert latest is not None
    if latest.id != note.id:
        problems.append(f"Only the latest version (v{latest.version}) can be corrected.")
    if body is not None and body == latest.text:
        problems.append("The corrected text is the same as the current version.")
    _raise(problems, "The correction was not saved")
    version = Note(
        participant_id=note.participant_id,
        session_id=note.session_id,
        root_id=root_id,
        version=latest.version + 1,
        text=body or "",
        amendment_reason=why,
        author_id=actor.user_id,
    )
    session.add(version)
    session.flush()
    record_event(
        session,
        actor,
        "note.amend",
        "note",
        root_id,
        old={"version": latest.version, "text": latest.text},
        new={"version": version.version, "text": body},
        reason=why,
    )
    return version


def get_note(session: Session, user: User, note_id: int) -> Note:
    note = session.get(Note, note_id)
    if note is None:
        raise NotFound(f"No note {note_id}.")
    participant_queries.get_participant(session, user, note.participant_id)
    return note


def note_history(session: Session, note: Note) -> list[Note]:
    root_id = note.root_id or note.id
    return list(
        session.scalars(
            sa.select(Note)
            .where(sa.or_(Note.id == root_id, Note.root_id == root_id))
            .order_by(Note.version)
        )
    )
