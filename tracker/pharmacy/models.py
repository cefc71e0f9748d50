"""The investigational product's record at each site (SPEC §12): DEA registrations, storage
locations, lots and the append-only ledger with its witnesses, loss reports and count
explanations.

Nothing here is ever updated or deleted (database triggers refuse it): a mistake is put right
by a correction entry that reverses the wrong one, with a reason."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tracker.db import Base, enum_column, utcnow
from tracker.protocol.accountability import ENTRY_KINDS, EntryKind

LOSS_REPORTS = ("initial_notice", "dea_form_106")
_KINDS = ", ".join(f"'{k}'" for k in ENTRY_KINDS)


class DeaRegistration(Base):
    """A site's DEA registration for Schedule I research. The newest row is the one in force;
    once a site has one, a dose there must name a dispensing."""

    __tablename__ = "dea_registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    number: Mapped[str] = mapped_column(sa.String(20))
    registrant: Mapped[str] = mapped_column(sa.String(200))
    expires_on: Mapped[date]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class StorageLocation(Base):
    """A securely locked place where a site keeps the product (a safe, a cabinet)."""

    __tablename__ = "storage_locations"
    __table_args__ = (sa.UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class DrugLot(Base):
    """A lot of one product at one site. ``arm`` ties a blinded product to the arm it is for
    (read only by the unblinded); ``strength_mg`` is the labelled strength a unit covers in
    a dose (for a matched placebo, that of the capsule it matches)."""

    __tablename__ = "drug_lots"
    __table_args__ = (
        sa.UniqueConstraint("site_id", "product", "lot_number"),
        sa.CheckConstraint("strength_mg > 0", name="strength_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    product: Mapped[str] = mapped_column(sa.String(200))
    lot_number: Mapped[str] = mapped_column(sa.String(60))
    strength_mg: Mapped[float] = mapped_column(sa.Numeric(7, 2, asdecimal=False))
    expires_on: Mapped[date]
    arm: Mapped[str | None] = mapped_column(sa.String(60))
    storage_location_id: Mapped[int | None] = mapped_column(sa.ForeignKey("storage_locations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class LedgerEntry(Base):
    """One line of a lot's ledger. Which columns a kind fills is held by CHECK constraints;
    the order of the ledger is the order of ``id``."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN ({_KINDS})", name="kind_known"),
        sa.CheckConstraint("units >= 0", name="units_not_negative"),
        sa.CheckConstraint(
            "(kind = 'dispensing') = (session_id IS NOT NULL)", name="dispensing_has_session"
        ),
        sa.CheckConstraint(
            "(kind = 'return') = (dispensing_id IS NOT NULL)", name="return_has_dispensing"
        ),
        sa.CheckConstraint(
            "(kind = 'correction') = (reverses_id IS NOT NULL)", name="correction_reverses"
        ),
        sa.CheckConstraint(
            "kind <> 'correction' OR reason IS NOT NULL", name="correction_has_reason"
        ),
        sa.CheckConstraint(
            "(kind = 'count') = (counted_units IS NOT NULL AND expected_units IS NOT NULL)",
            name="count_has_figures",
        ),
        sa.CheckConstraint(
            "kind <> 'receipt' OR (dea_form_222 IS NOT NULL AND witness_id IS NOT NULL)",
            name="receipt_documented",
        ),
        sa.CheckConstraint(
            "kind <> 'destruction' OR dea_form_41 IS NOT NULL", name="destruction_documented"
        ),
        sa.CheckConstraint("kind <> 'loss' OR description IS NOT NULL", name="loss_described"),
        sa.UniqueConstraint("reverses_id"),
        sa.Index("ix_ledger_entries_lot_kind", "lot_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(sa.ForeignKey("drug_lots.id"))
    kind: Mapped[EntryKind] = mapped_column(enum_column(EntryKind))
    units: Mapped[int]
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    reverses_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_entries.id"))
    session_id: Mapped[int | None] = mapped_column(sa.ForeignKey("therapy_sessions.id"), index=True)
    dispensing_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ledger_entries.id"), index=True
    )
    supplier: Mapped[str | None] = mapped_column(sa.String(200))
    dea_form_222: Mapped[str | None] = mapped_column(sa.String(40))
    witness_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    dea_form_41: Mapped[str | None] = mapped_column(sa.String(40))
    description: Mapped[str | None] = mapped_column(sa.Text)
    counted_units: Mapped[int | None]
    expected_units: Mapped[int | None]


class EntryWitness(Base):
    """A witness who signed an entry (a destruction) with their own password."""

    __tablename__ = "ledger_witnesses"
    __table_args__ = (sa.UniqueConstraint("entry_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_entries.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(sa.String(20))
    printed_name: Mapped[str] = mapped_column(sa.String(200))
    meaning: Mapped[str] = mapped_column(sa.Text)
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LossReport(Base):
    """A report made of a loss: the initial notice to the DEA, then DEA Form 106."""

    __tablename__ = "loss_reports"
    __table_args__ = (
        sa.UniqueConstraint("entry_id", "report"),
        sa.CheckConstraint("report IN ('initial_notice', 'dea_form_106')", name="report_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_entries.id"))
    report: Mapped[str] = mapped_column(sa.String(20))
    reference: Mapped[str] = mapped_column(sa.String(80))
    reported_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class CountExplanation(Base):
    """Why a physical count differed from the book balance (C20)."""

    __tablename__ = "count_explanations"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_entries.id"), unique=True)
    explanation: Mapped[str] = mapped_column(sa.Text)
    explained_at: Mapped[datetime] = mapped_column(default=utcnow)
    explained_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
