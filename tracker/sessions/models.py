"""Therapy sessions: a preparation, dosing or integration session of one participant, its
therapists and its life cycle. What is recorded in a session belongs to the dosing, safety and
notes features."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.auth.models import User
from tracker.db import Base, enum_column, utcnow
from tracker.protocol import SessionKind, SessionStatus

SESSION_KINDS = tuple(kind.value for kind in SessionKind)
SESSION_STATUSES = tuple(status.value for status in SessionStatus)


def in_values(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


session_therapists = sa.Table(
    "session_therapists",
    Base.metadata,
    sa.Column("session_id", sa.ForeignKey("therapy_sessions.id"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), primary_key=True),
)


class TherapySession(Base):
    """A preparation, dosing or integration session of one participant, tied to a cycle."""

    __tablename__ = "therapy_sessions"
    __table_args__ = (
        sa.CheckConstraint(in_values("kind", SESSION_KINDS), name="kind_known"),
        sa.CheckConstraint(in_values("status", SESSION_STATUSES), name="status_known"),
        sa.CheckConstraint(
            "ended_at IS NULL OR (started_at IS NOT NULL AND ended_at > started_at)",
            name="ends_after_start",
        ),
        sa.CheckConstraint(
            "status <> 'completed' OR ended_at IS NOT NULL", name="completed_has_end"
        ),
        sa.CheckConstraint("cycle >= 0", name="cycle_positive"),
        sa.Index("ix_therapy_sessions_participant_kind", "participant_id", "kind", "cycle"),
        sa.Index("ix_therapy_sessions_scheduled_at", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"))
    kind: Mapped[SessionKind] = mapped_column(enum_column(SessionKind))
    cycle: Mapped[int]
    scheduled_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    status: Mapped[SessionStatus] = mapped_column(
        enum_column(SessionStatus), default=SessionStatus.SCHEDULED
    )
    overnight_stay: Mapped[bool | None]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    therapists: Mapped[list[User]] = relationship(
        secondary=session_therapists, lazy="selectin", order_by=User.username
    )


class RecordedInSession:
    """A record made during a therapy session at a moment of its own (a dose, a reading).

    The session's start and end must enclose every such moment. The features that record in
    sessions sit above this one, so the session's life cycle finds their records through this
    mixin (``tracker.sessions.queries.recorded_span``) instead of importing them.
    """

    session_moment: ClassVar[str]
