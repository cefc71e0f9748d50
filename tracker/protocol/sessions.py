"""Therapy sessions in the core (SPEC §4): their kinds, their statuses and the life cycle
between them, which kind each participant state allows, and what a change of a session's
times and status must respect. Pure: the services bring the facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tracker.protocol.states import State


class SessionKind(StrEnum):
    PREPARATION = "preparation"
    DOSING = "dosing"
    INTEGRATION = "integration"


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    MISSED = "missed"


# The life cycle as a table: the statuses a session in each status can be given. A session
# that is over (completed, cancelled, missed) keeps its status.
STATUS_MOVES: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.SCHEDULED: frozenset(SessionStatus),
    SessionStatus.COMPLETED: frozenset({SessionStatus.COMPLETED}),
    SessionStatus.CANCELLED: frozenset({SessionStatus.CANCELLED}),
    SessionStatus.MISSED: frozenset({SessionStatus.MISSED}),
}
FINAL_STATUSES: frozenset[SessionStatus] = frozenset(
    status for status, moves in STATUS_MOVES.items() if moves == {status}
)
# A status that needs both times recorded.
TIMED_STATUSES: frozenset[SessionStatus] = frozenset({SessionStatus.COMPLETED})

# Which session kind each participant state allows (anything else is refused with the reason).
SESSION_KIND_FOR_STATE: dict[State, SessionKind] = {
    State.PREPARATION: SessionKind.PREPARATION,
    State.DOSING: SessionKind.DOSING,
    State.INTEGRATION: SessionKind.INTEGRATION,
}


@dataclass(frozen=True)
class SessionChange:
    """A session as it is and as a change would leave it, with the span of what was recorded
    in it (readings and doses) and the time now."""

    status: SessionStatus
    new_status: str
    started_at: datetime | None
    ended_at: datetime | None
    recorded_from: datetime | None
    recorded_until: datetime | None
    now: datetime


def session_change_problems(change: SessionChange) -> list[str]:
    """Every reason the change is refused (none: it may be made)."""
    problems: list[str] = []
    try:
        new_status = SessionStatus(change.new_status)
    except ValueError:
        problems.append(f"The status is one of {', '.join(SessionStatus)}.")
        new_status = change.status
    start, end = change.started_at, change.ended_at
    for name, moment in (("The start", start), ("The end", end)):
        if moment is not None and moment > change.now:
            problems.append(f"{name} cannot be in the future.")
    if end is not None and start is None:
        problems.append("A session cannot end before it has started: give its start.")
    if end is not None and start is not None and end <= start:
        problems.append("The end must be after the start.")
    if new_status in TIMED_STATUSES and (start is None or end is None):
        problems.append(f"A {new_status} session needs its start and its end.")
    if new_status not in STATUS_MOVES[change.status]:
        problems.append(f"The session is already {change.status}; its status cannot change.")
    if change.recorded_from is not None and start is not None and change.recorded_from < start:
        problems.append("Readings or doses were recorded before that start time.")
    if change.recorded_until is not None and end is not None and change.recorded_until > end:
        problems.append("Readings or doses were recorded after that end time.")
    return problems


# A dosing session lasts a working day and its overnight stay; a record made much later than
# its start is more often a mistyped date than a late reading, so it needs a confirmation.
PLAUSIBLE_SPAN = timedelta(hours=24)


def unusual_moment(started_at: datetime, moment: datetime, what: str) -> str | None:
    """Why ``moment`` needs confirming, or None when it falls within a day of the start."""
    gap = moment - started_at
    if gap <= PLAUSIBLE_SPAN:
        return None
    days, hours = gap.days, gap.seconds // 3600
    span = f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    return (
        f"{what} at {moment:%Y-%m-%d %H:%M} UTC is {span} after the session started "
        f"({started_at:%Y-%m-%d %H:%M} UTC). If the time is right, confirm it."
    )
