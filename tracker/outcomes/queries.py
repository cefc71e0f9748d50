"""Reading a participant's outcome records, and the days their timepoints are counted from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.outcomes.models import Assessment, MissedTimepoint
from tracker.participants.models import Participant, RaterAssignment, TransitionEvent
from tracker.protocol import CLOSED_STATES, ProtocolDefinition, State
from tracker.protocol.outcomes import (
    AnchorDays,
    anchor_days_of,
    missing_instruments,
    treatment_over,
    window_closed,
)
from tracker.protocol.sessions import SessionKind, SessionStatus
from tracker.sessions.models import TherapySession, session_therapists
from tracker.study.models import definition_of


def assessments_of(db: Session, participant_id: int) -> list[Assessment]:
    return list(
        db.scalars(
            sa.select(Assessment)
            .where(Assessment.participant_id == participant_id)
            .order_by(Assessment.administered_at, Assessment.id)
        )
    )


def missed_of(db: Session, participant_id: int) -> list[MissedTimepoint]:
    return list(
        db.scalars(
            sa.select(MissedTimepoint)
            .where(MissedTimepoint.participant_id == participant_id)
            .order_by(MissedTimepoint.id)
        )
    )


def raters_of(db: Session, participant_id: int) -> list[User]:
    return list(
        db.scalars(
            sa.select(User)
            .join(RaterAssignment, RaterAssignment.user_id == User.id)
            .where(
                RaterAssignment.participant_id == participant_id,
                RaterAssignment.ended_at.is_(None),
            )
            .order_by(User.username)
        )
    )


def is_assigned_rater(db: Session, participant_id: int, user_id: int) -> bool:
    return (
        db.scalar(
            sa.select(RaterAssignment.id).where(
                RaterAssignment.participant_id == participant_id,
                RaterAssignment.user_id == user_id,
                RaterAssignment.ended_at.is_(None),
            )
        )
        is not None
    )


def attended_a_session(db: Session, participant_id: int, user_id: int) -> bool:
    """Whether the user was named on any of the participant's sessions, whatever its status:
    a user who held another role before is not blind to what they saw."""
    return (
        db.scalar(
            sa.select(session_therapists.c.session_id)
            .join(TherapySession, TherapySession.id == session_therapists.c.session_id)
            .where(
                TherapySession.participant_id == participant_id,
                session_therapists.c.user_id == user_id,
            )
            .limit(1)
        )
        is not None
    )


def anchor_days(db: Session, participant: Participant, protocol: ProtocolDefinition) -> AnchorDays:
    """Enrolment, each cycle's dosing day (its start, or the day it is scheduled for) and, once
    treatment is over, the day of the last dosing (the core's ``anchor_days_of``)."""
    rows = db.execute(
        sa.select(TherapySession.cycle, TherapySession.started_at, TherapySession.scheduled_at)
        .where(
            TherapySession.participant_id == participant.id,
            TherapySession.kind == SessionKind.DOSING,
            TherapySession.status.in_([SessionStatus.SCHEDULED, SessionStatus.COMPLETED]),
        )
        .order_by(TherapySession.cycle, TherapySession.scheduled_at)
    ).all()
    over = treatment_over(participant.state, participant.cycle, protocol.schedule.dosing_cycles)
    return anchor_days_of(
        participant.enrolled_at.date(),
        [(cycle, (started_at or scheduled_at).date()) for cycle, started_at, scheduled_at in rows],
        treatment_over=over,
        dosing_cycles=protocol.schedule.dosing_cycles,
        left_treatment_on=_left_treatment_on(db, participant.id) if over and not rows else None,
        withdrawn_on=_withdrawn_on(db, participant) if over else None,
    )


def left_treatment(ids: sa.ColumnElement[bool]) -> sa.Select[int, datetime]:
    """(participant id, the moment treatment ended) for the participants of ``ids`` who
    entered treatment (reached preparation) and left it: into follow-up, or closed. Who failed
    screening or withdrew during it was never treated, so is never followed up."""
    treated = (
        sa.select(TransitionEvent.participant_id)
        .where(TransitionEvent.to_state == State.PREPARATION)
        .scalar_subquery()
    )
    return (
        sa.select(TransitionEvent.participant_id, sa.func.min(TransitionEvent.occurred_at))
        .where(
            ids,
            TransitionEvent.to_state.in_([State.FOLLOW_UP, *CLOSED_STATES]),
            TransitionEvent.participant_id.in_(treated),
        )
        .group_by(TransitionEvent.participant_id)
    )


def withdrawals(ids: sa.ColumnElement[bool]) -> sa.Select[int, datetime]:
    """(participant id, the moment of the withdrawal) for the participants of ``ids``."""
    return (
        sa.select(TransitionEvent.participant_id, sa.func.min(TransitionEvent.occurred_at))
        .where(ids, TransitionEvent.to_state == State.WITHDRAWN)
        .group_by(TransitionEvent.participant_id)
    )


def _left_treatment_on(db: Session, participant_id: int) -> date | None:
    row = db.execute(left_treatment(TransitionEvent.participant_id == participant_id)).first()
    return row[1].date() if row is not None else None


def _withdrawn_on(db: Session, participant: Participant) -> date | None:
    if participant.state != State.WITHDRAWN:
        return None
    row = db.execute(withdrawals(TransitionEvent.participant_id == participant.id)).first()
    return row[1].date() if row is not None else None


def open_follow_up(
    db: Session, participant: Participant, protocol: ProtocolDefinition, today: date
) -> tuple[str, ...]:
    """The titles of the follow-up timepoints still open: not fully assessed, not recorded as
    missed, and not past their window."""
    followed = [t for t in protocol.timepoints if t.follow_up]
    if not followed:
        return ()
    recorded = {(a.timepoint, a.instrument) for a in assessments_of(db, participant.id)}
    missed = {m.timepoint for m in missed_of(db, participant.id)}
    anchors = anchor_days(db, participant, protocol)
    return tuple(
        t.title
        for t in followed
        if t.code not in missed
        and missing_instruments(t, recorded)
        and not window_closed(t, anchors, today)
    )


def raters_of_site(db: Session, site_id: int) -> list[User]:
    return list(
        db.scalars(
            sa.select(User)
            .where(User.site_id == site_id, User.role == "rater", User.is_active.is_(True))
            .order_by(User.username)
        )
    )


def baseline_total(
    db: Session, participant: Participant, protocol: ProtocolDefinition, instrument: str
) -> int | None:
    """The participant's baseline total of ``instrument``, if recorded."""
    if protocol.outcomes is None:
        return None
    return db.scalar(
        sa.select(Assessment.total).where(
            Assessment.participant_id == participant.id,
            Assessment.timepoint == protocol.outcomes.baseline_timepoint,
            Assessment.instrument == instrument,
        )
    )


def anchors_of(db: Session, participants: Sequence[Participant]) -> dict[int, AnchorDays]:
    """The anchors of each participant under a protocol with timepoints, in three queries
    (a report or a work list over many participants)."""
    ids = [p.id for p in participants]
    if not ids:
        return {}
    dosings: dict[int, list[tuple[int, date]]] = defaultdict(list)
    for participant_id, cycle, started_at, scheduled_at in db.execute(
        sa.select(
            TherapySession.participant_id,
            TherapySession.cycle,
            TherapySession.started_at,
            TherapySession.scheduled_at,
        )
        .where(
            TherapySession.participant_id.in_(ids),
            TherapySession.kind == SessionKind.DOSING,
            TherapySession.status.in_([SessionStatus.SCHEDULED, SessionStatus.COMPLETED]),
        )
        .order_by(TherapySession.participant_id, TherapySession.cycle, TherapySession.scheduled_at)
    ):
        dosings[participant_id].append((cycle, (started_at or scheduled_at).date()))
    in_batch = TransitionEvent.participant_id.in_(ids)
    left = {pid: moment.date() for pid, moment in db.execute(left_treatment(in_batch))}
    withdrawn = {pid: moment.date() for pid, moment in db.execute(withdrawals(in_batch))}
    result = {}
    for participant in participants:
        protocol = definition_of(participant.protocol_version)
        if not protocol.timepoints:
            continue
        cycles = protocol.schedule.dosing_cycles
        result[participant.id] = anchor_days_of(
            participant.enrolled_at.date(),
            dosings.get(participant.id, []),
            treatment_over=treatment_over(participant.state, participant.cycle, cycles),
            dosing_cycles=cycles,
            left_treatment_on=left.get(participant.id),
            withdrawn_on=withdrawn.get(participant.id),
        )
    return result


def recorded_of(
    db: Session, ids: Sequence[int]
) -> tuple[dict[int, set[tuple[str, str]]], dict[int, set[str]]]:
    """Per participant, the (timepoint, instrument) pairs assessed and the timepoints recorded
    as missed, in two queries."""
    recorded: dict[int, set[tuple[str, str]]] = defaultdict(set)
    missed: dict[int, set[str]] = defaultdict(set)
    if not ids:
        return recorded, missed
    for pid, timepoint, instrument in db.execute(
        sa.select(Assessment.participant_id, Assessment.timepoint, Assessment.instrument).where(
            Assessment.participant_id.in_(ids)
        )
    ):
        recorded[pid].add((timepoint, instrument))
    for pid, timepoint in db.execute(
        sa.select(MissedTimepoint.participant_id, MissedTimepoint.timepoint).where(
            MissedTimepoint.participant_id.in_(ids)
        )
    ):
        missed[pid].add(timepoint)
    return recorded, missed
