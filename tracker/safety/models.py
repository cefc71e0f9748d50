"""Safety records of a participant: side effects, adverse events, suicidality screens and
pregnancy tests."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, utcnow


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
