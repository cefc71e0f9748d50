"""Read models of the drug ledger shared by the pages, the API and the PDF: a site's stock,
one lot's ledger with its running balance, what is still to do (discrepancies to explain, loss
reports due).

For a blinded reader an arm-bound lot shows neither product nor lot number, and its
dispensings name neither the participant nor their number: from the ledger alone nobody can
group participants by the lot they were given (SPEC §11)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.db import utcnow
from tracker.pharmacy import queries
from tracker.pharmacy.models import (
    CountExplanation,
    DrugLot,
    EntryWitness,
    LedgerEntry,
    LossReport,
    StorageLocation,
)
from tracker.protocol.accountability import (
    EntryKind,
    LedgerLine,
    LossDeadline,
    LotRecord,
    discrepancy,
    dispensing_number,
    loss_deadlines,
    open_discrepancies,
    run_lot_checks,
    running_balances,
    totals,
)
from tracker.protocol.compliance_records import CheckResult
from tracker.sites.models import Site

KIND_TITLES = {
    EntryKind.RECEIPT: "Receipt",
    EntryKind.DISPENSING: "Dispensing",
    EntryKind.RETURN: "Return to stock",
    EntryKind.DESTRUCTION: "Destruction",
    EntryKind.LOSS: "Loss or theft",
    EntryKind.COUNT: "Physical count",
    EntryKind.CORRECTION: "Correction",
}


@dataclass(frozen=True)
class WitnessView:
    printed_name: str
    role: str
    signed_at: datetime
    meaning: str


@dataclass(frozen=True)
class EntryView:
    id: int | None  # None: hidden from a blinded reader (a dispensing or return)
    kind: str
    title: str
    units: int
    change: int  # signed effect on the balance
    balance: int
    occurred_at: datetime
    recorded_by: str
    recorded_at: datetime
    details: list[str]
    reason: str | None = None
    reverses: int | None = None
    reversed_by: int | None = None
    number: str | None = None  # a dispensing's number, for the unblinded
    session: str | None = None  # the participant and cycle, for the unblinded
    session_id: int | None = None
    dispensing_id: int | None = None
    counted_units: int | None = None
    expected_units: int | None = None
    discrepancy: int = 0
    explanation: str | None = None
    witnesses: list[WitnessView] = field(default_factory=list)
    deadlines: list[LossDeadline] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "kind": self.kind,
            "units": self.units,
            "change": self.change,
            "balance": self.balance,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_by": self.recorded_by,
            "recorded_at": self.recorded_at.isoformat(),
            "details": self.details,
        }
        optional = {
            "reason": self.reason,
            "reverses": self.reverses,
            "reversed_by": self.reversed_by,
            "dispensing": self.number,
            "session_id": self.session_id,
            "dispensing_id": self.dispensing_id,
            "counted_units": self.counted_units,
            "expected_units": self.expected_units,
            "explanation": self.explanation,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.kind == EntryKind.COUNT:
            out["discrepancy"] = self.discrepancy
        if self.witnesses:
            out["witnesses"] = [
                {
                    "printed_name": w.printed_name,
                    "role": w.role,
                    "signed_at": w.signed_at.isoformat(),
                }
                for w in self.witnesses
            ]
        if self.deadlines:
            out["reports"] = [
                {
                    "report": d.report,
                    "due_at": d.due_at.isoformat(),
                    "reported_at": d.reported_at.isoformat() if d.reported_at else None,
                }
                for d in self.deadlines
            ]
        return out


@dataclass(frozen=True)
class LotView:
    id: int
    site: str
    product: str
    lot_number: str
    strength_mg: float
    expires_on: date
    arm: str | None  # for the unblinded only
    storage: str | None
    masked: bool
    balance: int
    totals: dict[str, int]
    entries: list[EntryView]
    open_discrepancies: list[int]
    open_reports: list[LossDeadline]
    registration: str | None
    label: str = ""  # as the checks name the lot ("S01 lot (blinded) #2" for the blinded)
    lines: tuple[LedgerLine, ...] = ()
    withheld: tuple[int, int] = (0, 0)  # dispensed and returned units a blinded reader sees

    def checks(self, now: datetime) -> tuple[CheckResult, ...]:
        """C20 to C23 on the ledger this view read (no second read of it)."""
        return run_lot_checks(LotRecord(self.label, self.lines, masked=self.masked), now)

    @property
    def expired(self) -> bool:
        return self.expires_on < utcnow().date()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "site": self.site,
            "product": self.product,
            "lot": self.lot_number,
            "strength_mg": self.strength_mg,
            "expires_on": self.expires_on.isoformat(),
            "storage": self.storage,
            "blinded": self.masked,
            "balance": self.balance,
            "totals": self.totals,
            "open_discrepancies": self.open_discrepancies,
            "reports_due": [
                {"loss": d.loss_id, "report": d.report, "due_at": d.due_at.isoformat()}
                for d in self.open_reports
            ],
            "entries": [e.to_dict() for e in self.entries],
        }
        if self.arm is not None:
            out["arm"] = self.arm
        return out


def _masked(db: Session, user: User, lot: DrugLot) -> bool:
    return lot.arm is not None and not queries.sees_products(db, user)


def _detail(entry: LedgerEntry, names: dict[int, str], masked: bool) -> list[str]:
    out = []
    if entry.supplier:
        out.append(f"Supplier: {entry.supplier}")
    if entry.dea_form_222:
        out.append(f"DEA Form 222: {entry.dea_form_222}")
    if entry.witness_id is not None:
        out.append(f"Witness: {names.get(entry.witness_id, '?')}")  # printed name
    if entry.dea_form_41:
        out.append(f"DEA Form 41: {entry.dea_form_41}")
    if entry.description:
        out.append(entry.description)
    if entry.dispensing_id is not None and not masked:
        out.append(f"From dispensing {dispensing_number(entry.dispensing_id)}")
    return out


def lot_view(db: Session, user: User | None, lot: DrugLot) -> LotView:
    """The lot and its whole ledger with the balance after each entry, as ``user`` may read
    it (None: the command line on the server, which reads the pharmacy's own copy)."""
    masked = user is not None and _masked(db, user, lot)
    entries = queries.lot_entries(db, lot.id)
    lines = queries.lines_from(db, entries)
    ids = [e.id for e in entries]
    names = queries.users_named(
        db, [e.recorded_by_id for e in entries] + [e.witness_id for e in entries if e.witness_id]
    )
    witnesses: dict[int, list[WitnessView]] = defaultdict(list)
    explanations: dict[int, str] = {}
    if ids:
        for w in db.scalars(
            sa.select(EntryWitness).where(EntryWitness.entry_id.in_(ids)).order_by(EntryWitness.id)
        ):
            witnesses[w.entry_id].append(
                WitnessView(w.printed_name, w.role, w.signed_at, w.meaning)
            )
        explanations = dict(
            db.execute(
                sa.select(CountExplanation.entry_id, CountExplanation.explanation).where(
                    CountExplanation.entry_id.in_(ids)
                )
            ).all()
        )
    sessions = (
        {}
        if masked
        else queries.session_labels(db, [e.session_id for e in entries if e.session_id])
    )
    reversed_by = {e.reverses_id: e.id for e in entries if e.reverses_id is not None}
    views = []
    previous = 0
    withheld = [0, 0]  # units out and back that a blinded reader sees only as totals
    for (line, after), entry in zip(running_balances(lines), entries, strict=True):
        if masked and line.kind in (EntryKind.DISPENSING, EntryKind.RETURN):
            # Which participant took units of an arm-bound lot, and when, would sort them by
            # arm: a blinded reader sees the totals only.
            withheld[line.kind is EntryKind.RETURN] += entry.units
            previous = after
            continue
        hidden = masked
        views.append(
            EntryView(
                id=None if hidden else entry.id,
                kind=line.kind.value,
                title=KIND_TITLES[line.kind],
                units=entry.units,
                change=after - previous,
                balance=after,
                occurred_at=entry.occurred_at,
                recorded_by=names.get(entry.recorded_by_id, "?"),
                recorded_at=entry.recorded_at,
                details=_detail(entry, names, masked),
                reason=entry.reason,
                reverses=None if hidden else entry.reverses_id,
                reversed_by=None if hidden else reversed_by.get(entry.id),
                # (a blinded reader sees no entry's id: ids are shared by every lot)
                number=None
                if masked or line.kind is not EntryKind.DISPENSING
                else dispensing_number(entry.id),
                session=sessions.get(entry.session_id) if entry.session_id else None,
                session_id=None if masked else entry.session_id,
                dispensing_id=None if masked else entry.dispensing_id,
                counted_units=entry.counted_units,
                expected_units=entry.expected_units,
                discrepancy=discrepancy(line),
                explanation=explanations.get(entry.id),
                witnesses=witnesses[entry.id],
                deadlines=list(loss_deadlines(line)) if line.kind is EntryKind.LOSS else [],
            )
        )
        previous = after
    gone = {e.reverses_id for e in entries if e.reverses_id}
    site = db.get(Site, lot.site_id)
    assert site is not None
    storage = db.get(StorageLocation, lot.storage_location_id) if lot.storage_location_id else None
    registration = queries.registration_of(db, lot.site_id)
    return LotView(
        id=lot.id,
        site=site.code,
        product=queries.MASKED_PRODUCT if masked else lot.product,
        lot_number="blinded" if masked else lot.lot_number,
        strength_mg=lot.strength_mg,
        expires_on=lot.expires_on,
        arm=None if masked or lot.arm is None else lot.arm,
        storage=storage.name if storage else None,
        masked=masked,
        balance=previous,
        totals={k.value: v for k, v in totals(lines).items()},
        entries=views,
        # A blinded reader learns that something is due, never an entry's number.
        open_discrepancies=[0 if masked else line.id for line in open_discrepancies(lines)],
        open_reports=[
            replace(d, loss_id=0) if masked else d
            for line in lines
            if line.kind is EntryKind.LOSS and line.id not in gone
            for d in loss_deadlines(line)
            if d.open()
        ],
        withheld=(withheld[0], withheld[1]),
        label=queries.lot_label(lot, site.code, masked=masked),
        lines=tuple(lines),
        registration=(
            f"{registration.number} ({registration.registrant}, expires "
            f"{registration.expires_on:%Y-%m-%d})"
            if registration
            else None
        ),
    )


@dataclass(frozen=True)
class StockRow:
    lot: LotView

    @property
    def attention(self) -> list[str]:
        out = [
            f"Count #{i}: difference to explain" if i else "A count's difference to explain"
            for i in self.lot.open_discrepancies
        ]
        now = utcnow()
        out += [
            f"{f'Loss #{d.loss_id}' if d.loss_id else 'A loss'}: {d.report} "
            f"{'overdue since' if d.overdue(now) else 'due'} {d.due_at:%Y-%m-%d %H:%M} UTC"
            for d in self.lot.open_reports
        ]
        if self.lot.expired and self.lot.balance:
            out.append(f"Expired {self.lot.expires_on:%Y-%m-%d} with {self.lot.balance} units")
        return out


def stock(db: Session, user: User, site: str | None = None) -> list[StockRow]:
    """Every lot the user may see (their site's, or the study's), with its balance."""
    query = queries.lots_query(user)
    if site:
        query = query.join(Site, Site.id == DrugLot.site_id).where(Site.code == site)
    return [StockRow(lot_view(db, user, lot)) for lot in db.scalars(query)]


def loss_reports_of(db: Session, entry_id: int) -> list[LossReport]:
    return list(
        db.scalars(
            sa.select(LossReport).where(LossReport.entry_id == entry_id).order_by(LossReport.id)
        )
    )


@dataclass(frozen=True)
class PharmacistWork:
    lots: list[StockRow]  # lots with something to do
    to_dispense: list[tuple[int, str, datetime]]  # dosing sessions of the week with no product


def pharmacist_work(db: Session, user: User) -> PharmacistWork:
    """The pharmacist's dashboard: the lots that need something (a difference to explain, a
    loss report due, expired stock) and the week's dosing sessions not yet dispensed for."""
    assert user.site_id is not None
    rows = [row for row in stock(db, user) if row.attention]
    until = utcnow() + timedelta(days=7)
    return PharmacistWork(rows, queries.sessions_to_dispense(db, user.site_id, until))
