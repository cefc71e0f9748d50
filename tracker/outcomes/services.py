"""Recording outcome assessments and missed timepoints, and assigning raters (SPEC §10).

The core scores the items, places the assessment in its timepoint's window and says who may
record it; this module loads the facts, stores the figures with the audit event, and flushes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.db import utcnow
from tracker.errors import Conflict, InvalidInput, RuleViolation
from tracker.outcomes import queries
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.participants.models import Participant, RaterAssignment, TherapistAssignment
from tracker.participants.recording import not_future, require_open, require_role, text_field
from tracker.protocol import ProtocolDefinition, RecordKind, Role
from tracker.protocol.outcomes import (
    Instrument,
    Score,
    Timepoint,
    in_window,
    item_problems,
    recorder_refusal,
    score,
    window_of,
)
from tracker.study.services import definition_of


def _protocol(participant: Participant) -> ProtocolDefinition:
    return definition_of(participant.protocol_version)


def measures_of(
    protocol: ProtocolDefinition, timepoint_code: str, instrument_code: str
) -> tuple[Timepoint, Instrument]:
    """The timepoint and instrument, refused with every reason when the protocol has no such
    pair (for the page, whose address names them, and for the service)."""
    if not protocol.instruments:
        message = f"Protocol {protocol.code} version {protocol.version} has no outcome measures."
        raise RuleViolation(message, [message])
    problems = []
    timepoint = instrument = None
    try:
        timepoint = protocol.timepoint(timepoint_code)
    except KeyError:
        known = ", ".join(t.code for t in protocol.timepoints)
        problems.append(f"There is no timepoint {timepoint_code!r} (the protocol has {known}).")
    try:
        instrument = protocol.instrument(instrument_code)
    except KeyError:
        known = ", ".join(i.code for i in protocol.instruments)
        problems.append(f"There is no instrument {instrument_code!r} (the protocol has {known}).")
    if (
        timepoint is not None
        and instrument is not None
        and instrument.code not in timepoint.instruments
    ):
        problems.append(
            f"{timepoint.title} assesses {', '.join(timepoint.instruments)}, not {instrument.code}."
        )
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    assert timepoint is not None and instrument is not None
    return timepoint, instrument


def _belongs_to(db: Session, actor: Actor, participant: Participant) -> bool:
    """Whether the actor is one of the participant's own team in their role. Site staff are
    already limited to their site by the participant's lookup."""
    if actor.user_id is None:
        return False
    if actor.role in (Role.COORDINATOR, Role.INVESTIGATOR):
        return True
    if actor.role == Role.THERAPIST:
        return (
            db.scalar(
                sa.select(TherapistAssignment.id).where(
                    TherapistAssignment.participant_id == participant.id,
                    TherapistAssignment.user_id == actor.user_id,
                    TherapistAssignment.ended_at.is_(None),
                )
            )
            is not None
        )
    if actor.role == Role.RATER:
        return queries.is_assigned_rater(db, participant.id, actor.user_id)
    return False


def preview_assessment(
    participant: Participant, *, timepoint: str, instrument: str, items: Mapping[str, object]
) -> Score:
    """The total, subscales and band the items would be stored with, or a refusal naming
    every missing or out-of-range item; nothing is stored (the form shows it before saving)."""
    _, scale = measures_of(_protocol(participant), timepoint, instrument)
    problems = list(item_problems(scale, items))
    if problems:
        raise RuleViolation(" ".join(problems), problems)
    return score(scale, {code: int(value) for code, value in items.items()})  # type: ignore[call-overload]


def record_assessment(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    timepoint: str,
    instrument: str,
    administered_at: datetime,
    items: Mapping[str, object],
    reason: str | None = None,
) -> Assessment:
    """Score and store one instrument at one timepoint. Refused, with every reason: an unknown
    timepoint or instrument, a recorder the blind does not allow, a missing or out-of-range
    item, a moment in the future, a second assessment of the same timepoint and instrument, an
    assessment outside its window without a reason, a closed participant."""
    require_role(actor, Role.COORDINATOR, Role.THERAPIST, Role.INVESTIGATOR, Role.RATER)
    require_open(participant, RecordKind.ASSESSMENT)
    protocol = _protocol(participant)
    point, scale = measures_of(protocol, timepoint, instrument)
    refusal = recorder_refusal(
        scale,
        str(actor.role),
        assigned=_belongs_to(db, actor, participant),
        attended_a_session=actor.user_id is not None
        and queries.attended_a_session(db, participant.id, actor.user_id),
    )
    if refusal is not None:
        raise RuleViolation(refusal, [refusal])
    problems = list(item_problems(scale, items))
    not_future(administered_at, "The time it was administered", problems)
    if administered_at < participant.enrolled_at:
        problems.append("The time it was administered is before the participant's enrolment.")
    reason_text = text_field(reason, "The reason", problems, required=False)
    anchors = queries.anchor_days(db, participant, protocol)
    placed = in_window(point, anchors, administered_at.date())
    if placed is None:
        problems.append(
            f"{point.title} cannot be assessed yet: what it is counted from "
            f"({point.anchor.value.replace('_', ' ')}"
            f"{f' of cycle {point.cycle}' if point.cycle else ''}) has not happened."
        )
    if placed is False and reason_text is None:
        window = window_of(point, anchors)
        assert window is not None
        problems.append(
            f"{point.title} is due from {window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d}; an "
            f"assessment on {administered_at:%Y-%m-%d} is outside its window and needs a "
            "reason (it is recorded as a deviation)."
        )
    if problems:
        raise RuleViolation(" ".join(problems), problems)
    existing = db.scalar(
        sa.select(Assessment.id).where(
            Assessment.participant_id == participant.id,
            Assessment.timepoint == point.code,
            Assessment.instrument == scale.code,
        )
    )
    if existing is not None:
        raise Conflict(
            f"{scale.code} at {point.title} is already recorded for {participant.study_id} "
            f"(assessment {existing}); an assessment is recorded once."
        )
    scores = {code: int(value) for code, value in items.items()}  # type: ignore[call-overload]
    figures = score(scale, scores)
    assert actor.user_id is not None
    row = Assessment(
        participant_id=participant.id,
        timepoint=point.code,
        instrument=scale.code,
        administered_at=administered_at,
        items=scores,
        total=figures.total,
        subscales=dict(figures.subscales),
        band=figures.band,
        in_window=placed,
        reason=reason_text,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "assessment.record",
        "participant",
        participant.study_id,
        new={
            "assessment": row.id,
            "timepoint": row.timepoint,
            "instrument": row.instrument,
            "administered_at": administered_at.isoformat(),
            "items": scores,
            "total": row.total,
            "band": row.band,
            "in_window": placed,
        },
        reason=reason_text,
    )
    return row


def record_missed_timepoint(
    db: Session, actor: Actor, participant: Participant, timepoint: str, reason: str | None
) -> MissedTimepoint:
    """A timepoint that will not be assessed, with the reason (SPEC §10)."""
    require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    protocol = _protocol(participant)
    problems: list[str] = []
    try:
        point = protocol.timepoint(timepoint)
    except KeyError:
        problems.append(f"There is no timepoint {timepoint!r}.")
    reason_text = text_field(reason, "The reason", problems)
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    done = db.scalar(
        sa.select(Assessment.id).where(
            Assessment.participant_id == participant.id, Assessment.timepoint == point.code
        )
    )
    if done is not None:
        message = f"{point.title} has an assessment already; it was not missed."
        raise RuleViolation(message, [message])
    if db.scalar(
        sa.select(MissedTimepoint.id).where(
            MissedTimepoint.participant_id == participant.id,
            MissedTimepoint.timepoint == point.code,
        )
    ):
        raise Conflict(f"{point.title} is already recorded as missed.")
    assert actor.user_id is not None and reason_text is not None
    row = MissedTimepoint(
        participant_id=participant.id,
        timepoint=point.code,
        reason=reason_text,
        recorded_by_id=actor.user_id,
    )
    db.add(row)
    db.flush()
    record_event(
        db,
        actor,
        "timepoint.missed",
        "participant",
        participant.study_id,
        new={"timepoint": point.code},
        reason=reason_text,
    )
    return row


def _raters_by_username(
    db: Session, participant: Participant, usernames: Sequence[str]
) -> list[User]:
    names = sorted({u.strip().lower() for u in usernames if u and u.strip()})
    found = {u.username: u for u in db.scalars(sa.select(User).where(User.username.in_(names)))}
    problems = []
    for name in names:
        user = found.get(name)
        if user is None or user.site_id != participant.site_id:
            problems.append(f"No rater {name!r} at site {participant.site.code}.")
        elif user.role != Role.RATER:
            problems.append(f"{name} is a {user.role}, not a rater.")
        elif not user.is_active:
            problems.append(f"{name} is disabled.")
        elif queries.attended_a_session(db, participant.id, user.id):
            problems.append(
                f"{name} was present at one of {participant.study_id}'s sessions and cannot "
                "rate them blind."
            )
    if problems:
        raise InvalidInput(" ".join(problems), problems)
    return [found[n] for n in names]


def set_raters(
    db: Session, actor: Actor, participant: Participant, usernames: Sequence[str]
) -> list[User]:
    """Make the assigned raters exactly ``usernames``; ended assignments stay on record."""
    require_role(actor, Role.COORDINATOR, Role.INVESTIGATOR)
    require_open(participant, RecordKind.ASSESSMENT)
    wanted = {u.id: u for u in _raters_by_username(db, participant, usernames)}
    active = list(
        db.scalars(
            sa.select(RaterAssignment).where(
                RaterAssignment.participant_id == participant.id,
                RaterAssignment.ended_at.is_(None),
            )
        )
    )
    for assignment in active:
        if assignment.user_id not in wanted:
            assignment.ended_at = utcnow()
            db.flush()
            record_event(
                db,
                actor,
                "participant.rater_unassign",
                "participant",
                participant.study_id,
                old={"rater": assignment.user.username},
            )
    current = {a.user_id for a in active}
    for user_id, user in wanted.items():
        if user_id in current:
            continue
        db.add(
            RaterAssignment(
                participant_id=participant.id, user_id=user_id, assigned_by_id=actor.user_id
            )
        )
        db.flush()
        record_event(
            db,
            actor,
            "participant.rater_assign",
            "participant",
            participant.study_id,
            new={"rater": user.username},
        )
    return sorted(wanted.values(), key=lambda u: u.username)
