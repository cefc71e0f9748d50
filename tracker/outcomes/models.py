"""Outcome assessments and missed timepoints (SPEC §10). Both are append-only: an assessment
is scored once, by the core, from its item scores, and kept with the figures it was stored with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.auth.models import User
from tracker.db import Base, utcnow


class Assessment(Base):
    """One instrument administered at one timepoint: its item scores, and the total,
    subscales and band the core derived from them."""

    __tablename__ = "assessments"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "timepoint", "instrument"),
        sa.CheckConstraint("total >= 0", name="total_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    timepoint: Mapped[str] = mapped_column(sa.String(60))
    instrument: Mapped[str] = mapped_column(sa.String(60))
    administered_at: Mapped[datetime]
    items: Mapped[dict[str, int]] = mapped_column(sa.JSON)
    total: Mapped[int]
    subscales: Mapped[dict[str, int]] = mapped_column(sa.JSON)
    band: Mapped[str | None] = mapped_column(sa.String(60))
    # Whether it fell in the timepoint's window as known when recorded; outside it needs a reason.
    in_window: Mapped[bool | None]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))

    recorded_by: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def figures(self) -> dict[str, Any]:
        return {"total": self.total, "subscales": dict(self.subscales), "band": self.band}


class MissedTimepoint(Base):
    """A timepoint that will not be assessed, and why (it still counts against retention)."""

    __tablename__ = "missed_timepoints"
    __table_args__ = (sa.UniqueConstraint("participant_id", "timepoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    timepoint: Mapped[str] = mapped_column(sa.String(60))
    reason: Mapped[str] = mapped_column(sa.Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
