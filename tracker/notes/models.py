"""Append-only notes and their corrections."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.auth.models import User
from tracker.db import Base, utcnow


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
