"""Randomisation lists, allocations, unblindings and blinding-integrity guesses (SPEC §11).

The arm of an entry is read only by the statistician's and the pharmacist's queries and by
those of an investigator who unblinded the participant (``randomisation.queries``); nothing
else selects the column. Every table is append-only but for an entry's allocation, which is
set once (a unique participant per list, under a row lock)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, utcnow

LIST_SOURCES = ("generated", "imported")
RESPONDENTS = ("participant", "therapist", "rater")


class RandomisationList(Base):
    """One list for a protocol version: generated with a seed or imported; its hash is on the
    audit trail. A newer list replaces an older one only for entries not yet used."""

    __tablename__ = "randomisation_lists"
    __table_args__ = (
        sa.CheckConstraint("source IN ('generated', 'imported')", name="source_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol_version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("protocol_versions.id"), index=True
    )
    source: Mapped[str] = mapped_column(sa.String(20))
    seed: Mapped[int | None] = mapped_column(sa.BigInteger)
    per_stratum: Mapped[int | None]
    entries_count: Mapped[int]
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class RandomisationEntry(Base):
    """One line of a list: the ``position``-th allocation of ``stratum``; ``participant_id``
    once it has been used."""

    __tablename__ = "randomisation_entries"
    __table_args__ = (
        sa.UniqueConstraint("list_id", "stratum", "position"),
        sa.UniqueConstraint("randomisation_number"),
        sa.UniqueConstraint("participant_id"),
        sa.Index("ix_randomisation_entries_next", "list_id", "stratum", "participant_id"),
        sa.CheckConstraint(
            "(participant_id IS NULL) = (allocated_at IS NULL)", name="allocation_complete"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(sa.ForeignKey("randomisation_lists.id"))
    stratum: Mapped[str] = mapped_column(sa.String(120))
    position: Mapped[int]
    block: Mapped[int]
    block_size: Mapped[int]
    arm: Mapped[str] = mapped_column(sa.String(60))
    randomisation_number: Mapped[str] = mapped_column(sa.String(20))
    participant_id: Mapped[int | None] = mapped_column(sa.ForeignKey("participants.id"))
    allocated_at: Mapped[datetime | None]
    allocated_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class EmergencyUnblinding(Base):
    """An investigator learnt a participant's arm in an emergency (SPEC §11, C18)."""

    __tablename__ = "emergency_unblindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(sa.Text)
    unblinded_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlindingGuess(Base):
    """Who a respondent believes the participant was allocated to, and how sure they are."""

    __tablename__ = "blinding_guesses"
    __table_args__ = (
        sa.CheckConstraint(
            "respondent IN ('participant', 'therapist', 'rater')", name="respondent_known"
        ),
        sa.CheckConstraint("confidence BETWEEN 1 AND 5", name="confidence_range"),
        sa.CheckConstraint(
            "(session_id IS NULL) <> (timepoint IS NULL)", name="session_or_timepoint"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    respondent: Mapped[str] = mapped_column(sa.String(20))
    respondent_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("therapy_sessions.id"))
    timepoint: Mapped[str | None] = mapped_column(sa.String(60))
    guess: Mapped[str] = mapped_column(sa.String(60))
    confidence: Mapped[int]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class StudyUnblinding(Base):
    """The study's unblinding: final, by an admin and a statistician who each re-entered
    their password. At most one row."""

    __tablename__ = "study_unblindings"
    __table_args__ = (sa.CheckConstraint("id = 1", name="once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unblinded_at: Mapped[datetime] = mapped_column(default=utcnow)
    admin_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    statistician_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(sa.Text)
