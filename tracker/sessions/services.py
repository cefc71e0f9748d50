"""Therapy sessions: scheduling in the kind the participant's state allows, and the life
cycle (start, end, complete, cancel, missed) as the protocol core's table decides it.

Each function validates every input at once (InvalidInput lists each problem), asks the
protocol core where a rule applies (RuleViolation lists each reason), changes the rows,
appends the audit events and flushes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.db import utcnow
from tracker.errors import InvalidInput, NotFound, RuleViolation
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.recording import (
    RECORDING_ROLES,
    raise_problems,
    require_open,
    require_role,
)
from tracker.participants.services import ensure_therapist_assigned
from tracker.pharmacy import queries as pharmacy_queries
from tracker.protocol import (
    FINAL_STATUSES,
    SESSION_KIND_FOR_STATE,
    RecordKind,
    Role,
    SessionChange,
    SessionKind,
    SessionStatus,
    State,
    session_change_problems,
)
from tracker.sessions.models import SESSION_KINDS, TherapySession
from tracker.sessions.queries import recorded_span


def get_session_and_participant_for(
    db: Session, user: User, session_id: int
) -> tuple[TherapySession, Participant]:
    """A session of a participant the user can see, with that participant; anything else is
    a 404."""
    found = db.execute(
        participant_queries.visible_to(user)
        .add_columns(TherapySession)
        .join(TherapySession, TherapySession.participant_id == Participant.id)
        .where(TherapySession.id == session_id)
    ).one_or_none()
    if found is None:
        raise NotFound(f"No session {session_id} that you can see.")
    participant, row = found
    return row, participant


def get_session_for(db: Session, user: User, session_id: int) -> TherapySession:
    """A session of a participant the user can see; anything else is a 404."""
    return get_session_and_participant_for(db, user, session_id)[0]


def participant_of(db: Session, therapy_session: TherapySession) -> Participant:
    participant = db.get(Participant, therapy_session.participant_id)
    assert participant is not None
    return participant


def _therapists(db: Session, participant: Participant, usernames: Sequence[str]) -> list[User]:
    names = sorted({n.strip().lower() for n in usernames if n and n.strip()})
    users = {u.username: u for u in db.scalars(sa.select(User).where(User.username.in_(names)))}
    problems = []
    for name in names:
        user = users.get(name)
        if user is None or user.site_id != participant.site_id or user.role != Role.THERAPIST.value:
            problems.append(f"No therapist {name!r} at site {participant.site.code}.")
        elif not user.is_active:
            problems.append(f"{name} is disabled.")
    raise_problems(problems, "The therapists are not valid")
    return [users[n] for n in names]


def schedule_session(
    db: Session,
    actor: Actor,
    participant: Participant,
    *,
    kind: str,
    scheduled_at: datetime,
    therapists: Sequence[str] = (),
) -> TherapySession:
    """Schedule a session of the kind the participant's state allows, in the current cycle.
    Naming a therapist assigns them to the participant too."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant, RecordKind.SESSION)
    if kind not in SESSION_KINDS:
        raise InvalidInput(f"A session's kind is one of {', '.join(SESSION_KINDS)}, not {kind!r}.")
    state = State(participant.state)
    allowed = SESSION_KIND_FOR_STATE.get(state)
    if allowed != kind:
        where = state.value.replace("_", " ")
        reason = (
            f"A {kind} session cannot be scheduled while {participant.study_id} is in {where}"
            + (f"; only {allowed} sessions can." if allowed else "; no sessions can.")
        )
        raise RuleViolation(reason, [reason])
    if kind == SessionKind.DOSING:
        existing = db.scalar(
            sa.select(TherapySession.id).where(
                TherapySession.participant_id == participant.id,
                TherapySession.kind == SessionKind.DOSING,
                TherapySession.cycle == participant.cycle,
                TherapySession.status.in_([SessionStatus.SCHEDULED, SessionStatus.COMPLETED]),
            )
        )
        if existing is not None:
            reason = f"Cycle {participant.cycle} already has a dosing session (#{existing})."
            raise RuleViolation(reason, [reason])
    people = _therapists(db, participant, therapists)
    row = TherapySession(
        participant_id=participant.id,
        kind=kind,
        cycle=participant.cycle,
        scheduled_at=scheduled_at,
        status=SessionStatus.SCHEDULED,
        created_by_id=actor.user_id,
        therapists=people,
    )
    db.add(row)
    db.flush()
    for therapist in people:
        ensure_therapist_assigned(db, actor, participant, therapist)
    record_event(
        db,
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


def update_session(
    db: Session,
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
    require_role(actor, *RECORDING_ROLES)
    participant = participant_of(db, row)
    require_open(participant, RecordKind.SESSION)
    before = _session_values(row)
    new_start = cast("datetime | None", row.started_at if started_at is UNSET else started_at)
    new_end = cast("datetime | None", row.ended_at if ended_at is UNSET else ended_at)
    new_status = str(row.status if status is UNSET else status)
    recorded_from, recorded_until = (
        recorded_span(db, row.id) if new_start is not None or new_end is not None else (None, None)
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
    if new_status in FINAL_STATUSES and new_status != row.status:
        # Held until commit: no dispensing lands while the session is being closed.
        db.execute(
            sa.select(TherapySession.id).where(TherapySession.id == row.id).with_for_update()
        )
        # Unused product goes back to stock before the session's record is closed (§12).
        problems += [
            f"Dispensing {d.number} has {d.use.unused_units} unused units: the pharmacist "
            f"returns them before the session is {new_status}."
            for d in pharmacy_queries.unreturned(db, row.id)
        ]
    people: list[User] | None = None
    if therapists is not UNSET:
        people = _therapists(db, participant, therapists)  # type: ignore[arg-type]
    raise_problems(problems, "The session was not changed")

    row.started_at = new_start
    row.ended_at = new_end
    row.status = SessionStatus(new_status)
    if overnight_stay is not UNSET:
        row.overnight_stay = overnight_stay  # type: ignore[assignment]
    if people is not None:
        row.therapists = people
        for therapist in people:
            ensure_therapist_assigned(db, actor, participant, therapist)
    db.flush()
    after = _session_values(row)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        record_event(
            db,
            actor,
            "session.update",
            "session",
            row.id,
            old={k: before[k] for k in changed},
            new={k: after[k] for k in changed},
        )
    return row


def check_session_of_participant(
    db: Session, participant: Participant, session_id: int | None
) -> None:
    if session_id is None:
        return
    row = db.get(TherapySession, session_id)
    if row is None or row.participant_id != participant.id:
        raise InvalidInput(f"Session {session_id} is not a session of {participant.study_id}.")
