"""The investigational product in the JSON API (SPEC §12): lots, ledger entries, loss
reports and count explanations; the site's registration and storage."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    CreatedOut,
    EntryIn,
    EntryOut,
    ExplanationIn,
    LossReportIn,
    LotIn,
    LotList,
    LotOut,
    RegistrationIn,
    StorageIn,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.extensions import password_check_limit
from tracker.pharmacy import presenters, queries, services
from tracker.protocol.accountability import EntryKind, dispensing_number
from tracker.protocol.accountability import balance as ledger_balance
from tracker.security import Permission, authenticated_user, requires


@api_route(
    bp,
    "/inventory/sites/<code>/registration",
    "POST",
    tag="inventory",
    status=201,
    summary="Record the site's DEA registration (then every dose there names a dispensing)",
    body=RegistrationIn,
    response=CreatedOut,
)
@requires(Permission.INVENTORY_REGISTER)
def inventory_registration(code: str) -> ResponseReturnValue:
    body = parse_body(RegistrationIn)
    row = services.register_site(
        get_db(),
        current_actor(),
        code,
        number=body.number,
        registrant=body.registrant,
        expires_on=body.expires_on,
    )
    return {"id": row.id}, 201


@api_route(
    bp,
    "/inventory/sites/<code>/storage",
    "POST",
    tag="inventory",
    status=201,
    summary="Add a storage location at the site",
    body=StorageIn,
    response=CreatedOut,
)
@requires(Permission.INVENTORY_RECORD)
def inventory_storage(code: str) -> ResponseReturnValue:
    body = parse_body(StorageIn)
    row = services.add_storage(
        get_db(),
        current_actor(),
        authenticated_user(),
        code,
        name=body.name,
        description=body.description,
    )
    return {"id": row.id}, 201


@api_route(
    bp,
    "/inventory/lots",
    "POST",
    tag="inventory",
    status=201,
    summary="Add a lot of a product at a site",
    body=LotIn,
    response=LotOut,
)
@requires(Permission.INVENTORY_RECORD)
def inventory_lot_create() -> ResponseReturnValue:
    body = parse_body(LotIn)
    db, user = get_db(), authenticated_user()
    lot = services.create_lot(
        db,
        current_actor(),
        user,
        site=body.site,
        product=body.product,
        lot=body.lot,
        strength_mg=body.strength_mg,
        expires_on=body.expires_on,
        arm=body.arm,
        storage=body.storage,
    )
    return presenters.lot_view(db, user, lot).to_dict(), 201


@api_route(
    bp,
    "/inventory/lots",
    "GET",
    tag="inventory",
    summary="The lots the user may see, with their balances and ledgers",
    response=LotList,
)
@requires(Permission.INVENTORY_VIEW)
def inventory_lots() -> ResponseReturnValue:
    db, user = get_db(), authenticated_user()
    return {"lots": [row.lot.to_dict() for row in presenters.stock(db, user)]}


@api_route(
    bp,
    "/inventory/lots/<int:lot_id>",
    "GET",
    tag="inventory",
    summary="One lot: its balance and every ledger entry with the balance after it",
    response=LotOut,
)
@requires(Permission.INVENTORY_VIEW)
def inventory_lot(lot_id: int) -> ResponseReturnValue:
    db, user = get_db(), authenticated_user()
    return presenters.lot_view(db, user, queries.get_lot(db, user, lot_id)).to_dict()


@api_route(
    bp,
    "/inventory/lots/<int:lot_id>/entries",
    "POST",
    tag="inventory",
    status=201,
    summary="Append a ledger entry: receipt, dispensing, return, destruction, loss, count or "
    "correction (the balance never goes below zero)",
    body=EntryIn,
    response=EntryOut,
)
@requires(Permission.INVENTORY_RECORD)
@password_check_limit
def inventory_entry(lot_id: int) -> ResponseReturnValue:
    body = parse_body(EntryIn)
    db, user = get_db(), authenticated_user()
    lot = queries.get_lot(db, user, lot_id)
    entry = services.record_entry(
        db,
        current_actor(),
        user,
        lot,
        kind=body.kind,
        units=body.units,
        occurred_at=body.occurred_at,
        supplier=body.supplier,
        dea_form_222=body.dea_form_222,
        witness=body.witness,
        session_id=body.session_id,
        dispensing_id=body.dispensing_id,
        dea_form_41=body.dea_form_41,
        witnesses=[services.Witness(w.username, w.password) for w in body.witnesses],
        description=body.description,
        counted_units=body.counted_units,
        explanation=body.explanation,
        reverses=body.reverses,
        reason=body.reason,
    )
    balance = ledger_balance(queries.lines_of(db, lot.id))
    return EntryOut(
        id=entry.id,
        lot=lot.id,
        kind=entry.kind,
        units=entry.units,
        balance=balance,
        dispensing=dispensing_number(entry.id) if entry.kind == EntryKind.DISPENSING else None,
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/inventory/entries/<int:entry_id>/loss-reports",
    "POST",
    tag="inventory",
    status=201,
    summary="Record the initial notice or the DEA Form 106 of a loss",
    body=LossReportIn,
    response=CreatedOut,
)
@requires(Permission.INVENTORY_RECORD)
def inventory_loss_report(entry_id: int) -> ResponseReturnValue:
    body = parse_body(LossReportIn)
    db, user = get_db(), authenticated_user()
    entry, _ = services.get_entry(db, user, entry_id, EntryKind.LOSS)
    row = services.report_loss(
        db,
        current_actor(),
        user,
        entry,
        report=body.report,
        reference=body.reference,
        reported_at=body.reported_at,
    )
    return {"id": row.id}, 201


@api_route(
    bp,
    "/inventory/entries/<int:entry_id>/explanation",
    "POST",
    tag="inventory",
    status=201,
    summary="Explain why a physical count differed from the ledger",
    body=ExplanationIn,
    response=CreatedOut,
)
@requires(Permission.INVENTORY_EXPLAIN)
def inventory_explanation(entry_id: int) -> ResponseReturnValue:
    body = parse_body(ExplanationIn)
    db, user = get_db(), authenticated_user()
    entry, _ = services.get_entry(db, user, entry_id, EntryKind.COUNT)
    row = services.explain_count(db, current_actor(), user, entry, explanation=body.explanation)
    return {"id": row.id}, 201
