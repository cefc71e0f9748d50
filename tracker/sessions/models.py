"""Sessions and what is recorded in them: doses, vital signs and their alerts, effects, side
effects, adverse events, suicidality screens, pregnancy tests and append-only notes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.auth.models import User
from tracker.db import Base, utcnow
from tracker.protocol import SessionKind, SessionStatus, plausible_check

SESSION_KINDS = tuple(kind.value for kind in SessionKind)
SESSION_STATUSES = tuple(status.value for status in SessionStatus)


def _in(column: str, values: tuple[str, ...]) -> str:
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
        sa.CheckConstraint(_in("kind", SESSION_KINDS), name="kind_known"),
        sa.CheckConstraint(_in("status", SESSION_STATUSES), name="status_known"),
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
    kind: Mapped[str] = mapped_column(sa.String(20))
    cycle: Mapped[int]
    scheduled_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(sa.String(20), default="scheduled")
    overnight_stay: Mapped[bool | None]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    therapists: Mapped[list[User]] = relationship(
        secondary=session_therapists, lazy="selectin", order_by=User.username
    )
    # Read by the session page, which joins it onto the session's row.
    effects: Mapped[SessionEffects | None] = relationship(uselist=False)


class DoseAdministration(Base):
    __tablename__ = "dose_administrations"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('initial', 'supplemental')", name="kind_known"),
        sa.CheckConstraint("amount_mg > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("therapy_sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    amount_mg: Mapped[int]
    administered_at: Mapped[datetime]
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An investigator's documented reason for a supplemental dose despite a breach.
    breach_justification: Mapped[str | None] = mapped_column(sa.Text)
    justified_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class VitalSignReading(Base):
    __tablename__ = "vital_sign_readings"
    __table_args__ = (
        sa.CheckConstraint(plausible_check("systolic"), name="systolic_plausible"),
        sa.CheckConstraint(plausible_check("diastolic"), name="diastolic_plausible"),
        sa.CheckConstraint(plausible_check("heart_rate"), name="heart_rate_plausible"),
        sa.CheckConstraint(plausible_check("temperature_c"), name="temperature_plausible"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("therapy_sessions.id"), index=True)
    measured_at: Mapped[datetime]
    systolic: Mapped[int]
    diastolic: Mapped[int]
    heart_rate: Mapped[int]
    temperature_c: Mapped[float] = mapped_column(sa.Numeric(4, 1, asdecimal=False))
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    alerts: Mapped[list[VitalSignAlert]] = relationship(
        lazy="selectin", order_by="VitalSignAlert.id"
    )


class VitalSignAlert(Base):
    """A threshold breach; open until someone acknowledges it with a note."""

    __tablename__ = "vital_sign_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    reading_id: Mapped[int] = mapped_column(sa.ForeignKey("vital_sign_readings.id"), index=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("therapy_sessions.id"), index=True)
    sign: Mapped[str] = mapped_column(sa.String(20))
    value: Mapped[float] = mapped_column(sa.Numeric(5, 1, asdecimal=False))
    threshold: Mapped[float] = mapped_column(sa.Numeric(5, 1, asdecimal=False))
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    acknowledgement: Mapped[str | None] = mapped_column(sa.Text)


class SessionEffects(Base):
    """The effects checklist of a dosing session: effects observed, or "none observed"."""

    __tablename__ = "session_effects"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("therapy_sessions.id"), unique=True)
    effects: Mapped[list[str]] = mapped_column(sa.JSON)
    none_observed: Mapped[bool]
    note: Mapped[str | None] = mapped_column(sa.Text)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class SideEffect(Base):
    __tablename__ = "side_effects"
    __table_args__ = (
        sa.CheckConstraint("severity IN ('mild', 'moderate', 'severe')", name="severity_known"),
        sa.CheckConstraint(
            "resolved_at IS NULL OR resolved_at >= onset_at", name="resolves_after_onset"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("therapy_sessions.id"))
    term: Mapped[str] = mapped_column(sa.String(200))
    severity: Mapped[str] = mapped_column(sa.String(20))
    onset_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdverseEvent(Base):
    """An adverse event: CTCAE grade, seriousness with its criteria, and the investigator's
    assessment of relatedness and expectedness. A serious one is due for report 24 h after
    the site became aware of it."""

    __tablename__ = "adverse_events"
    __table_args__ = (
        sa.CheckConstraint("grade BETWEEN 1 AND 5", name="grade_range"),
        sa.CheckConstraint("NOT serious OR report_due_at IS NOT NULL", name="serious_has_deadline"),
        sa.CheckConstraint(
            "resolved_at IS NULL OR resolved_at >= onset_at", name="resolves_after_onset"
        ),
        sa.CheckConstraint(
            "relatedness IS NULL OR relatedness IN "
            "('not_related', 'unlikely', 'possible', 'probable', 'definite')",
            name="relatedness_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("therapy_sessions.id"))
    term: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    onset_at: Mapped[datetime]
    aware_at: Mapped[datetime]
    grade: Mapped[int]
    serious: Mapped[bool]
    serious_criteria: Mapped[list[str]] = mapped_column(sa.JSON)
    outcome: Mapped[str] = mapped_column(sa.String(30), default="ongoing")
    resolved_at: Mapped[datetime | None]
    report_due_at: Mapped[datetime | None]
    reported_at: Mapped[datetime | None]
    relatedness: Mapped[str | None] = mapped_column(sa.String(20))
    expected: Mapped[bool | None]
    assessed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    assessed_at: Mapped[datetime | None]
    assessment_note: Mapped[str | None] = mapped_column(sa.Text)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class SuicidalityScreen(Base):
    __tablename__ = "suicidality_screens"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("therapy_sessions.id"))
    screened_at: Mapped[datetime]
    ideation: Mapped[bool]
    intent: Mapped[bool]
    plan: Mapped[bool]
    behaviour: Mapped[bool]
    positive: Mapped[bool]
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class PregnancyTest(Base):
    __tablename__ = "pregnancy_tests"
    __table_args__ = (
        sa.CheckConstraint("result IN ('negative', 'positive')", name="result_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    tested_at: Mapped[datetime]
    result: Mapped[str] = mapped_column(sa.String(10))
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Note(Base):
    """Append-only free text: a correction is a new version of the same note with a reason;
    the database refuses UPDATE and DELETE (triggers), so every version stays readable."""

    __tablename__ = "notes"
    __table_args__ = (
        sa.UniqueConstraint("root_id", "version"),
        sa.CheckConstraint(
            "version = 1 OR amendment_reason IS NOT NULL", name="amendment_has_reason"
        ),
        sa.CheckConstraint("(version = 1) = (root_id IS NULL)", name="versions_have_root"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Later versions point at the first version; the first has none (rows are never updated).
    root_id: Mapped[int | None] = mapped_column(sa.ForeignKey("notes.id"), index=True)
    version: Mapped[int]
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("therapy_sessions.id"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    amendment_reason: Mapped[str | None] = mapped_column(sa.Text)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)
