"""Reading the investigational product's record: a lot's ledger as the core's lines, what a
dispensing covers, who may see which product.

The blind (SPEC §11, §12): a lot tied to an arm names its product and lot number, and its
dispensings name their participant, only to the unblinded (the pharmacist and statistician
always, everyone after the study's unblinding). The blinded staff see a dispensing's number."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.auth.models import User
from tracker.dosing.models import DoseAdministration
from tracker.errors import NotFound
from tracker.participants.models import Participant
from tracker.pharmacy.models import (
    CountExplanation,
    DeaRegistration,
    DrugLot,
    EntryWitness,
    LedgerEntry,
    LossReport,
    StorageLocation,
)
from tracker.protocol.accountability import (
    DispensingUse,
    EntryKind,
    LedgerLine,
    LotRecord,
    dispensing_number,
)
from tracker.randomisation.queries import ALWAYS_UNBLINDED, arm_labels_by_version, study_unblinded
from tracker.sessions.models import TherapySession
from tracker.sites.models import Site

MASKED_PRODUCT = "Blinded investigational product"


def sees_products(db: Session, user: User) -> bool:
    """Whether ``user`` may read which product an arm-bound lot holds."""
    return user.role in ALWAYS_UNBLINDED or study_unblinded(db) is not None


def arm_labels(db: Session) -> dict[str, str]:
    """Every arm of the randomised protocols, code to label, in code order: what a blinded
    lot may be for."""
    arms: dict[str, str] = {}
    for labels in arm_labels_by_version(db).values():
        arms.update(labels)
    return dict(sorted(arms.items()))


def registration_of(db: Session, site_id: int) -> DeaRegistration | None:
    """The site's registration in force: the newest recorded."""
    return db.scalar(
        sa.select(DeaRegistration)
        .where(DeaRegistration.site_id == site_id)
        .order_by(DeaRegistration.id.desc())
        .limit(1)
    )


def keeps_ledger(db: Session, site_id: int) -> bool:
    """A site with a DEA registration on file keeps its Schedule I record here: a dose there
    must name a dispensing."""
    return (
        db.scalar(sa.select(DeaRegistration.id).where(DeaRegistration.site_id == site_id).limit(1))
        is not None
    )


def storage_of(db: Session, site_id: int) -> list[StorageLocation]:
    return list(
        db.scalars(
            sa.select(StorageLocation)
            .where(StorageLocation.site_id == site_id)
            .order_by(StorageLocation.name)
        )
    )


def lots_query(user: User) -> sa.Select[DrugLot]:
    query = sa.select(DrugLot).order_by(DrugLot.site_id, DrugLot.expires_on, DrugLot.id)
    if user.site_id is not None:
        query = query.where(DrugLot.site_id == user.site_id)
    return query


def get_lot(db: Session, user: User, lot_id: int) -> DrugLot:
    """The lot, if it is at the user's site (site staff) or the user is study-wide."""
    lot = db.get(DrugLot, lot_id)
    if lot is None or (user.site_id is not None and lot.site_id != user.site_id):
        raise NotFound(f"No lot {lot_id}.")
    return lot


def lock_lot(db: Session, lot_id: int) -> None:
    """Hold the lot's row until commit: one writer to a lot's balance at a time (SQLite:
    every write transaction is BEGIN IMMEDIATE already)."""
    db.execute(sa.select(DrugLot.id).where(DrugLot.id == lot_id).with_for_update())


def lot_entries(db: Session, lot_id: int) -> list[LedgerEntry]:
    return list(
        db.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.lot_id == lot_id).order_by(LedgerEntry.id)
        )
    )


def lines_from(db: Session, entries: Sequence[LedgerEntry]) -> list[LedgerLine]:
    ids = [e.id for e in entries]
    witnesses: dict[int, int] = defaultdict(int)
    reports: dict[tuple[int, str], datetime] = {}
    explained: set[int] = set()
    if ids:
        for entry_id, count in db.execute(
            sa.select(EntryWitness.entry_id, sa.func.count())
            .where(EntryWitness.entry_id.in_(ids))
            .group_by(EntryWitness.entry_id)
        ):
            witnesses[entry_id] = count
        for entry_id, report, at in db.execute(
            sa.select(LossReport.entry_id, LossReport.report, LossReport.reported_at).where(
                LossReport.entry_id.in_(ids)
            )
        ):
            reports[(entry_id, report)] = at
        explained = set(
            db.scalars(
                sa.select(CountExplanation.entry_id).where(CountExplanation.entry_id.in_(ids))
            )
        )
    return [
        LedgerLine(
            id=e.id,
            kind=EntryKind(e.kind),
            units=e.units,
            occurred_at=e.occurred_at,
            reverses=e.reverses_id,
            dispensing=e.dispensing_id,
            counted_units=e.counted_units,
            expected_units=e.expected_units,
            explained=e.id in explained,
            witnesses=witnesses[e.id],
            initial_notice_at=reports.get((e.id, "initial_notice")),
            form_106_at=reports.get((e.id, "dea_form_106")),
        )
        for e in entries
    ]


def lines_of(db: Session, lot_id: int) -> list[LedgerLine]:
    """The lot's ledger as the core reads it."""
    return lines_from(db, lot_entries(db, lot_id))


def lot_label(lot: DrugLot, site_code: str, *, masked: bool) -> str:
    return f"{site_code} lot {'(blinded) #' + str(lot.id) if masked else lot.lot_number}"


def lot_records(db: Session, lots: Iterable[DrugLot], *, masked: bool) -> list[LotRecord]:
    """The lots as the checks C20 to C23 see them."""
    codes = dict(db.execute(sa.select(Site.id, Site.code)).all())
    return [
        LotRecord(
            lot_label(lot, codes[lot.site_id], masked=masked and lot.arm is not None),
            tuple(lines_of(db, lot.id)),
            masked=masked and lot.arm is not None,
        )
        for lot in lots
    ]


# --- dispensings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dispensing:
    """A dispensing for a session, as every role of the site may read it."""

    id: int
    number: str
    lot_id: int
    units: int
    strength_mg: float
    occurred_at: datetime
    use: DispensingUse
    corrected: bool


def _uses(db: Session, entries: Sequence[LedgerEntry]) -> dict[int, tuple[int, int]]:
    """(mg dosed from it, units returned of it) per dispensing id."""
    ids = [e.id for e in entries]
    if not ids:
        return {}
    dosed = dict(
        db.execute(
            sa.select(DoseAdministration.dispensing_id, sa.func.sum(DoseAdministration.amount_mg))
            .where(DoseAdministration.dispensing_id.in_(ids))
            .group_by(DoseAdministration.dispensing_id)
        ).all()
    )
    returns = sa.select(LedgerEntry.id).where(LedgerEntry.dispensing_id.in_(ids))
    reversed_ = set(
        db.scalars(sa.select(LedgerEntry.reverses_id).where(LedgerEntry.reverses_id.in_(returns)))
    )
    returned: dict[int, int] = defaultdict(int)
    for entry_id, dispensing_id, units in db.execute(
        sa.select(LedgerEntry.id, LedgerEntry.dispensing_id, LedgerEntry.units).where(
            LedgerEntry.dispensing_id.in_(ids), LedgerEntry.kind == EntryKind.RETURN
        )
    ):
        if entry_id not in reversed_ and dispensing_id is not None:
            returned[dispensing_id] += units
    return {i: (int(dosed.get(i) or 0), returned[i]) for i in ids}


def _dispensings(db: Session, where: sa.ColumnElement[bool]) -> list[Dispensing]:
    rows = list(
        db.execute(
            sa.select(LedgerEntry, DrugLot.strength_mg)
            .join(DrugLot, DrugLot.id == LedgerEntry.lot_id)
            .where(where, LedgerEntry.kind == EntryKind.DISPENSING)
            .order_by(LedgerEntry.id)
        )
    )
    entries = [entry for entry, _ in rows]
    if not entries:
        return []
    uses = _uses(db, entries)
    corrected = set(
        db.scalars(
            sa.select(LedgerEntry.reverses_id).where(
                LedgerEntry.reverses_id.in_([e.id for e in entries])
            )
        )
    )
    return [
        Dispensing(
            entry.id,
            dispensing_number(entry.id),
            entry.lot_id,
            entry.units,
            strength,
            entry.occurred_at,
            DispensingUse(entry.units, strength, *uses[entry.id]),
            entry.id in corrected,
        )
        for entry, strength in rows
    ]


def dispensings_for(db: Session, session_id: int) -> list[Dispensing]:
    """The session's dispensings, corrected ones included (flagged)."""
    return _dispensings(db, LedgerEntry.session_id == session_id)


def dispensing(db: Session, entry_id: int) -> Dispensing | None:
    found = _dispensings(db, LedgerEntry.id == entry_id)
    return found[0] if found else None


def unreturned(db: Session, session_id: int) -> list[Dispensing]:
    """The session's standing dispensings that still have units out."""
    return [
        d for d in dispensings_for(db, session_id) if not d.corrected and d.use.unused_units > 0
    ]


def session_labels(db: Session, session_ids: Iterable[int]) -> dict[int, str]:
    """ "S01-0004, dosing 2" per session id, for the unblinded ledger."""
    ids = list(set(session_ids))
    if not ids:
        return {}
    return {
        session_id: f"{study_id}, dosing {cycle}"
        for session_id, study_id, cycle in db.execute(
            sa.select(TherapySession.id, Participant.study_id, TherapySession.cycle)
            .join(Participant, Participant.id == TherapySession.participant_id)
            .where(TherapySession.id.in_(ids))
        )
    }


def users_named(db: Session, user_ids: Iterable[int]) -> dict[int, str]:
    """Printed names by user id: the ledger is signed and read by people's names."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    return dict(db.execute(sa.select(User.id, User.printed_name).where(User.id.in_(ids))).all())


def open_dosing_sessions(db: Session, site_id: int) -> list[tuple[int, str]]:
    """(id, label) of the site's dosing sessions that can still take a dispensing."""
    rows = db.execute(
        sa.select(
            TherapySession.id,
            Participant.study_id,
            TherapySession.cycle,
            TherapySession.scheduled_at,
        )
        .join(Participant, Participant.id == TherapySession.participant_id)
        .where(
            Participant.site_id == site_id,
            TherapySession.kind == "dosing",
            TherapySession.status == "scheduled",
        )
        .order_by(TherapySession.scheduled_at)
    )
    return [
        (session_id, f"{study_id}, dosing {cycle} ({at:%Y-%m-%d %H:%M} UTC)")
        for session_id, study_id, cycle, at in rows
    ]


def lot_dispensings(db: Session, lot_id: int) -> list[Dispensing]:
    return _dispensings(db, LedgerEntry.lot_id == lot_id)


def sessions_to_dispense(
    db: Session, site_id: int, until: datetime, limit: int = 50
) -> list[tuple[int, str, datetime]]:
    """(session id, "S01-0004, dosing 2", scheduled at) of the site's dosing sessions not yet
    over, scheduled before ``until``, with no dispensing that stands: the pharmacist's list."""
    correction = sa.orm.aliased(LedgerEntry)
    dispensed = (
        sa.select(LedgerEntry.id)
        .where(
            LedgerEntry.session_id == TherapySession.id,
            LedgerEntry.kind == EntryKind.DISPENSING,
            ~sa.exists().where(correction.reverses_id == LedgerEntry.id),
        )
        .correlate(TherapySession)
        .exists()
    )
    rows = db.execute(
        sa.select(
            TherapySession.id,
            Participant.study_id,
            TherapySession.cycle,
            TherapySession.scheduled_at,
        )
        .join(Participant, Participant.id == TherapySession.participant_id)
        .where(
            Participant.site_id == site_id,
            TherapySession.kind == "dosing",
            TherapySession.status == "scheduled",
            TherapySession.scheduled_at < until,
            ~dispensed,
        )
        .order_by(TherapySession.scheduled_at)
        .limit(limit)
    )
    return [(sid, f"{study_id}, dosing {cycle}", at) for sid, study_id, cycle, at in rows]
