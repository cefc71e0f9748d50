"""Reading therapy sessions, in a fixed number of queries per page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from tracker.auth.models import User
from tracker.db import utcnow
from tracker.participants.models import Participant
from tracker.participants.queries import visibility, visible_to, without_protocol_text
from tracker.protocol import CLOSED_STATES, SessionKind, SessionStatus, State
from tracker.sessions.models import RecordedInSession, TherapySession


def sessions_of(db: Session, participant_id: int) -> list[TherapySession]:
    """The participant's sessions with their therapists (joined: one query, not two)."""
    return list(
        db.scalars(
            sa.select(TherapySession)
            .options(joinedload(TherapySession.therapists))
            .where(TherapySession.participant_id == participant_id)
            .order_by(TherapySession.scheduled_at, TherapySession.id)
        ).unique()
    )


# --- what is due: the dashboard -------------------------------------------------------------


@dataclass(frozen=True)
class DueItem:
    participant: Participant
    what: str
    due_at: datetime | None
    overdue: bool


def sessions_today(
    db: Session, user: User, limit: int = 50, day: datetime | None = None
) -> list[tuple[TherapySession, Participant]]:
    """Sessions scheduled for the day that begins at ``day`` (the current UTC day by
    default), of participants the user can see."""
    if day is None:
        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = db.execute(
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


def integration_due(db: Session, user: User, hours: int = 24, limit: int = 50) -> list[DueItem]:
    """Participants in integration whose first integration session of the cycle is not yet
    completed: due within ``hours`` of the end of the cycle's dosing session."""
    # Correlated per participant in integration (few, at one site), each answered by the
    # (participant_id, kind, cycle) index; never an aggregate over the study's sessions.
    ended = (
        sa.select(sa.func.max(TherapySession.ended_at))
        .where(
            TherapySession.participant_id == Participant.id,
            TherapySession.kind == SessionKind.DOSING,
            TherapySession.cycle == Participant.cycle,
            TherapySession.status == SessionStatus.COMPLETED,
        )
        .scalar_subquery()
    )
    integrated = sa.exists().where(
        TherapySession.participant_id == Participant.id,
        TherapySession.kind == SessionKind.INTEGRATION,
        TherapySession.cycle == Participant.cycle,
        TherapySession.status == SessionStatus.COMPLETED,
    )
    rows = db.execute(
        visible_to(user)
        .options(without_protocol_text())
        .add_columns(ended.label("ended"))
        .where(Participant.state == State.INTEGRATION, ended.is_not(None), ~integrated)
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


def active_participants(db: Session, user: User, limit: int = 50) -> list[Participant]:
    """The participants the user can see that are not closed (a therapist's: assigned ones)."""
    return list(
        db.scalars(
            visible_to(user)
            .options(without_protocol_text())
            .where(Participant.state.not_in(CLOSED_STATES))
            .order_by(Participant.study_id)
            .limit(limit)
        )
    )


def recorded_span(db: Session, session_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and the last moment recorded in the session, over every record kind that
    is recorded in sessions (``RecordedInSession``): one aggregate query per kind."""
    earliest: list[datetime] = []
    latest: list[datetime] = []
    for model in RecordedInSession.__subclasses__():
        moment = getattr(model, model.session_moment)
        first, last = db.execute(
            sa.select(sa.func.min(moment), sa.func.max(moment)).where(
                model.session_id == session_id  # type: ignore[attr-defined]
            )
        ).one()
        earliest += [first] if first is not None else []
        latest += [last] if last is not None else []
    return min(earliest, default=None), max(latest, default=None)


# A dosing session is monitored for 8 hours and ended the next morning; one still open after
# a day was most likely never ended on the record.
OPEN_TOO_LONG = timedelta(hours=24)


def _sessions(
    db: Session, user: User, condition: sa.ColumnElement[bool], limit: int
) -> list[tuple[TherapySession, Participant]]:
    rows = db.execute(
        sa.select(TherapySession, Participant)
        .options(without_protocol_text(), sa.orm.raiseload(TherapySession.therapists))
        .join(Participant, Participant.id == TherapySession.participant_id)
        .where(*visibility(user), condition)
        .order_by(TherapySession.scheduled_at, TherapySession.id)
        .limit(limit)
    )
    return [(s, p) for s, p in rows]


def _left_open() -> sa.ColumnElement[bool]:
    return sa.and_(
        TherapySession.started_at.is_not(None),
        TherapySession.ended_at.is_(None),
        TherapySession.status == "scheduled",
        TherapySession.started_at < utcnow() - OPEN_TOO_LONG,
    )


def sessions_between(
    db: Session, user: User, start: datetime, end: datetime, limit: int = 200
) -> list[tuple[TherapySession, Participant]]:
    """Sessions scheduled in [start, end) of the participants the user can see, in time
    order (the site schedule)."""
    return _sessions(
        db,
        user,
        sa.and_(TherapySession.scheduled_at >= start, TherapySession.scheduled_at < end),
        limit,
    )


def week_and_left_open(
    db: Session, user: User, start: datetime, limit: int = 200
) -> tuple[list[tuple[TherapySession, Participant]], list[tuple[TherapySession, Participant]]]:
    """The dashboard's two lists of sessions in one read: those scheduled in the seven days
    from ``start``, and those started more than a day ago and never ended (each needs its
    end recorded, or it holds the participant's record open)."""
    end = start + timedelta(days=7)
    in_week = sa.and_(TherapySession.scheduled_at >= start, TherapySession.scheduled_at < end)
    rows = _sessions(db, user, sa.or_(in_week, _left_open()), limit)
    cutoff = utcnow() - OPEN_TOO_LONG
    week = [(s, p) for s, p in rows if start <= s.scheduled_at < end]
    left_open = [
        (s, p)
        for s, p in rows
        if s.started_at is not None
        and s.ended_at is None
        and s.status == "scheduled"
        and s.started_at < cutoff
    ]
    return week, left_open
