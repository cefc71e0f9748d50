"""Participants and their screening records: checklist answers, assessments, the signature,
consent, therapist assignments, transitions and protocol deviations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.auth.models import User
from tracker.db import Base, enum_column, utcnow
from tracker.protocol import State, WithdrawalCategory, pregnancy_test_required
from tracker.sites.models import Site
from tracker.study.models import ProtocolVersion

STATE_VALUES = tuple(s.value for s in State)
SEX_VALUES = ("female", "male", "intersex", "unknown")
WITHDRAWAL_VALUES = tuple(c.value for c in WithdrawalCategory)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Participant(Base):
    """A participant: pseudonymous (a study id, sex and year of birth; never a name), and a
    persisted state machine whose ``version`` every change checks and bumps."""

    __tablename__ = "participants"
    __table_args__ = (
        sa.CheckConstraint(_in("state", STATE_VALUES), name="state_known"),
        sa.CheckConstraint(
            f"held_from IS NULL OR {_in('held_from', STATE_VALUES)}", name="held_from_known"
        ),
        sa.CheckConstraint(
            "(state = 'on_hold') = (held_from IS NOT NULL)", name="held_from_only_on_hold"
        ),
        sa.CheckConstraint(_in("sex", SEX_VALUES), name="sex_known"),
        sa.CheckConstraint("year_of_birth BETWEEN 1900 AND 2100", name="year_of_birth_range"),
        sa.CheckConstraint("cycle >= 0", name="cycle_positive"),
        sa.CheckConstraint(
            "sex <> 'male' OR childbearing_potential IS NULL", name="childbearing_not_male"
        ),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint(
            f"withdrawal_category IS NULL OR {_in('withdrawal_category', WITHDRAWAL_VALUES)}",
            name="withdrawal_category_known",
        ),
        sa.UniqueConstraint("site_id", "site_number"),
        sa.Index("ix_participants_site_state", "site_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"))
    site_number: Mapped[int]
    protocol_version_id: Mapped[int] = mapped_column(sa.ForeignKey("protocol_versions.id"))
    sex: Mapped[str] = mapped_column(sa.String(10))
    year_of_birth: Mapped[int]
    state: Mapped[State] = mapped_column(enum_column(State), default=State.SCREENING)
    held_from: Mapped[State | None] = mapped_column(enum_column(State))
    cycle: Mapped[int] = mapped_column(default=0)
    withdrawal_category: Mapped[str | None] = mapped_column(sa.String(30))
    # Recorded for every participant who is not male; None (not recorded yet) counts as yes:
    # a negative pregnancy test is then due before each dosing (tracker.protocol.childbearing).
    childbearing_potential: Mapped[bool | None]
    version: Mapped[int] = mapped_column(default=1)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)
    protocol_version: Mapped[ProtocolVersion] = relationship(lazy="joined", innerjoin=True)

    @property
    def pregnancy_tests_required(self) -> bool:
        return pregnancy_test_required(self.sex, self.childbearing_potential)


class _Assignment:
    """A person assigned to a participant in their role; ending an assignment keeps the row,
    and at most one assignment of a person to a participant is open."""

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    ended_at: Mapped[datetime | None]

    @staticmethod
    def open_index(table: str) -> sa.Index:
        return sa.Index(
            f"uq_{table}_active",
            "participant_id",
            "user_id",
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )


class TherapistAssignment(_Assignment, Base):
    """A therapist assigned to a participant."""

    __tablename__ = "therapist_assignments"
    __table_args__ = (_Assignment.open_index("therapist_assignments"),)

    user: Mapped[User] = relationship(
        foreign_keys="TherapistAssignment.user_id", lazy="joined", innerjoin=True
    )


class RaterAssignment(_Assignment, Base):
    """A blinded rater assigned to a participant (SPEC §10)."""

    __tablename__ = "rater_assignments"
    __table_args__ = (_Assignment.open_index("rater_assignments"),)

    user: Mapped[User] = relationship(
        foreign_keys="RaterAssignment.user_id", lazy="joined", innerjoin=True
    )


class ChecklistAnswer(Base):
    """The current answer to one contraindication item (its history is in the audit trail).
    An unanswered item has no row: an answer is always yes or no."""

    __tablename__ = "checklist_answers"
    __table_args__ = (sa.UniqueConstraint("participant_id", "item_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"))
    item_code: Mapped[str] = mapped_column(sa.String(60))
    answer: Mapped[bool]
    note: Mapped[str | None] = mapped_column(sa.Text)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class ReviewAssessment(Base):
    """An investigator's assessment of a review item answered yes. A changed answer voids it."""

    __tablename__ = "review_assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    item_code: Mapped[str] = mapped_column(sa.String(60))
    acceptable: Mapped[bool]
    rationale: Mapped[str] = mapped_column(sa.Text)
    assessed_at: Mapped[datetime] = mapped_column(default=utcnow)
    assessed_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(sa.String(200))

    assessed_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class ChecklistSignature(Base):
    """An investigator's electronic signature of the checklist (21 CFR Part 11 style): printed
    name, UTC time, meaning and the SHA-256 of what was signed. A later change voids it."""

    __tablename__ = "checklist_signatures"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    signer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    printed_name: Mapped[str] = mapped_column(sa.String(200))
    meaning: Mapped[str] = mapped_column(sa.String(300))
    outcome: Mapped[str] = mapped_column(sa.String(20))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(sa.String(300))


class Consent(Base):
    """Informed consent: the document version, the date signed, and who obtained it."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    document_version: Mapped[str] = mapped_column(sa.String(60))
    signed_on: Mapped[date]
    obtained_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    obtained_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class TransitionEvent(Base):
    """One applied transition, with the guard results it was decided on."""

    __tablename__ = "transition_events"
    __table_args__ = (
        sa.CheckConstraint(_in("from_state", STATE_VALUES), name="from_state_known"),
        sa.CheckConstraint(_in("to_state", STATE_VALUES), name="to_state_known"),
        sa.UniqueConstraint("participant_id", "version_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    transition: Mapped[str] = mapped_column(sa.String(40))
    from_state: Mapped[State] = mapped_column(enum_column(State))
    to_state: Mapped[State] = mapped_column(enum_column(State))
    cycle_before: Mapped[int]
    cycle_after: Mapped[int]
    version_after: Mapped[int]
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[str | None] = mapped_column(sa.String(20))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    withdrawal_category: Mapped[str | None] = mapped_column(sa.String(30))
    override: Mapped[bool] = mapped_column(default=False)
    automatic: Mapped[bool] = mapped_column(default=False)
    guard_results: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProtocolDeviation(Base):
    """A guard an investigator overrode, with the reason; shown in every compliance report."""

    __tablename__ = "protocol_deviations"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    transition_event_id: Mapped[int] = mapped_column(
        sa.ForeignKey("transition_events.id"), index=True
    )
    guard_code: Mapped[str] = mapped_column(sa.String(60))
    description: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text)
    approved_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
