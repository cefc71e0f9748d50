"""The demo site's drug ledger (SPEC §12): its DEA registration, a safe, an open-label lot
and, once the randomised protocol is active, one blinded lot per arm; receipts against DEA
Form 222, a dispensing for every dosing session (``histories``), returns of unused units,
one witnessed destruction, one loss reported in time and a physical count of every lot. The
balances reconcile; nothing here is a real registration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tracker import clock
from tracker.auth.models import User
from tracker.auth.services import actor_for
from tracker.pharmacy import queries, services
from tracker.pharmacy.models import DrugLot
from tracker.protocol.accountability import balance

SAFE = "Pharmacy safe A (double-locked, alarmed)"
STRENGTH_MG = 20.0


def _receive(
    db: Session, pharmacist: User, lot: DrugLot, units: int, form: str, witness: str
) -> None:
    services.record_entry(
        db,
        actor_for(pharmacist),
        pharmacist,
        lot,
        kind="receipt",
        units=units,
        occurred_at=clock.now(),
        supplier="Demo Clinical Supplies (generated)",
        dea_form_222=form,
        witness=witness,
    )


def _lot(db: Session, pharmacist: User, product: str, number: str, arm: str | None) -> DrugLot:
    assert pharmacist.site is not None
    return services.create_lot(
        db,
        actor_for(pharmacist),
        pharmacist,
        site=pharmacist.site.code,
        product=product,
        lot=number,
        strength_mg=STRENGTH_MG,
        expires_on=(clock.now() + timedelta(days=3 * 365)).date(),
        arm=arm,
        storage=SAFE,
    )


def open_stock(db: Session, pharmacist: User, witness: User) -> Iterator[datetime]:
    """The registration, the safe and the open-label lot, then a second shipment later."""
    assert pharmacist.site is not None
    actor = actor_for(pharmacist)
    services.register_site(
        db,
        actor,
        pharmacist.site.code,
        number="RD1234563",
        registrant=f"{pharmacist.site.name} research pharmacy",
        expires_on=(clock.now() + timedelta(days=3 * 365)).date(),
    )
    services.add_storage(db, actor, pharmacist, pharmacist.site.code, name=SAFE, description=None)
    lot = _lot(db, pharmacist, "Midomafetamine HCl 20 mg capsules", "MDMA-24-0117", None)
    _receive(db, pharmacist, lot, 300, "221000117", witness.username)
    yield clock.now() + timedelta(days=240)
    _receive(db, pharmacist, lot, 200, "221000342", witness.username)


def blinded_stock(db: Session, pharmacist: User, witness: User, arms: tuple[str, ...]) -> None:
    """One lot per arm of the randomised protocol, as matched 20 mg capsules."""
    labels = {
        "midomafetamine": "Midomafetamine HCl 20 mg capsules, blinded kit",
        "active_placebo": "Active placebo capsules matched to 20 mg, blinded kit",
    }
    for index, arm in enumerate(arms):
        lot = _lot(
            db, pharmacist, labels.get(arm, f"{arm} capsules"), f"BLD-25-{index + 1:04d}", arm
        )
        _receive(db, pharmacist, lot, 160, f"22100{index + 1:04d}", witness.username)


def ledger_events(
    db: Session,
    pharmacist: User,
    witnesses: tuple[tuple[User, str], tuple[User, str]],
    end: datetime,
) -> Iterator[datetime]:
    """A loss (two capsules dropped into a sink, unrecoverable) with its initial notice the
    next morning and DEA Form 106 twelve days later; near the end, the destruction of two
    damaged capsules before two witnesses, then a physical count of every lot that agrees."""
    actor = actor_for(pharmacist)
    open_label = _first_open_label(db, pharmacist)
    loss = services.record_entry(
        db,
        actor,
        pharmacist,
        open_label,
        kind="loss",
        units=2,
        occurred_at=clock.now(),
        description="Two capsules fell into the sink drain while a dispensing was prepared; "
        "not recoverable. Found at once; site security and the investigator informed.",
    )
    yield clock.now() + timedelta(hours=18)
    services.report_loss(
        db,
        actor,
        pharmacist,
        loss,
        report="initial_notice",
        reference="DEA-DIV-NOTICE-0418",
        reported_at=clock.now(),
    )
    yield clock.now() + timedelta(days=12)
    services.report_loss(
        db,
        actor,
        pharmacist,
        loss,
        report="dea_form_106",
        reference="TLR-106-2025-0093",
        reported_at=clock.now(),
    )
    yield end - timedelta(days=3)
    services.record_entry(
        db,
        actor,
        pharmacist,
        open_label,
        kind="destruction",
        units=2,
        occurred_at=clock.now(),
        dea_form_41="F41-S01-0001",
        witnesses=[services.Witness(user.username, password) for user, password in witnesses],
    )
    yield end - timedelta(days=2)
    for lot in db.scalars(queries.lots_query(pharmacist)):
        services.record_entry(
            db,
            actor,
            pharmacist,
            lot,
            kind="count",
            counted_units=balance(queries.lines_of(db, lot.id)),
            occurred_at=clock.now(),
        )


def _first_open_label(db: Session, pharmacist: User) -> DrugLot:
    return next(lot for lot in db.scalars(queries.lots_query(pharmacist)) if lot.arm is None)
