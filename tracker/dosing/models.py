"""What is recorded in a dosing session: doses, vital signs and their alerts, effects."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.db import Base, enum_column, utcnow
from tracker.protocol import plausible_check
from tracker.protocol.dosing import DoseKind
from tracker.sessions.models import RecordedInSession


class DoseAdministration(RecordedInSession, Base):
    __tablename__ = "dose_administrations"
    session_moment = "administered_at"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('initial', 'supplemental')", name="kind_known"),
        sa.CheckConstraint("amount_mg > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("therapy_sessions.id"), index=True)
    kind: Mapped[DoseKind] = mapped_column(enum_column(DoseKind))
    amount_mg: Mapped[int]
    administered_at: Mapped[datetime]
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An investigator's documented reason for a supplemental dose despite a breach.
    breach_justification: Mapped[str | None] = mapped_column(sa.Text)
    justified_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    # The dispensing of the investigational product that covers the dose (SPEC §12).
    dispensing_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ledger_entries.id"), index=True
    )


class VitalSignReading(RecordedInSession, Base):
    __tablename__ = "vital_sign_readings"
    session_moment = "measured_at"
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
