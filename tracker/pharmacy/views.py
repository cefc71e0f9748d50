"""The drug-ledger pages (SPEC §12): the site's stock, one lot's ledger with the forms of
each entry, the printable accountability log (page and PDF) and the reconciliation report."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms.fields.choices import SelectChoice

from tracker.audit.services import record_event
from tracker.auth.signin import current_actor
from tracker.db import get_db, utcnow, write_unit
from tracker.extensions import password_check_limit
from tracker.pages import attempt, signed_in_user
from tracker.pharmacy import presenters, queries, services
from tracker.pharmacy.forms import (
    EntryForm,
    ExplanationForm,
    LossReportForm,
    LotForm,
    RegistrationForm,
    StorageForm,
)
from tracker.pharmacy.models import DrugLot
from tracker.protocol.accountability import LOT_CHECKS, EntryKind
from tracker.security import Permission, can, requires
from tracker.sites.models import Site

bp = Blueprint("pharmacy", __name__)

# The fields each kind of entry takes, in the order the form shows them.
ENTRY_FIELDS: dict[str, tuple[str, ...]] = {
    "receipt": ("occurred_at", "units", "supplier", "dea_form_222", "witness"),
    "dispensing": ("occurred_at", "session_id", "units"),
    "return": ("occurred_at", "dispensing_id", "units"),
    "destruction": (
        "occurred_at",
        "units",
        "dea_form_41",
        "witness_1",
        "password_1",
        "witness_2",
        "password_2",
    ),
    "loss": ("occurred_at", "units", "description"),
    "count": ("occurred_at", "counted_units", "explanation"),
    "correction": ("occurred_at", "reverses", "reason"),
}
ENTRY_HELP = {
    "receipt": "Units received against a DEA Form 222, with the person who witnessed the receipt.",
    "dispensing": "Units for one participant's dosing session; the dose records name it.",
    "return": "Unused units of a dispensing, back to stock (before the session is completed).",
    "destruction": "Units destroyed, on DEA Form 41, witnessed by two people who each sign "
    "with their own password.",
    "loss": "Units lost or stolen: the initial notice is due within one business day, DEA Form "
    "106 within 45 days.",
    "count": "A physical count; a difference from the ledger is a discrepancy to explain.",
    "correction": "Reverses one entry that was wrong; write the right one again after it.",
}


def _site_of(lot: DrugLot) -> Site:
    site = get_db().get(Site, lot.site_id)
    assert site is not None
    return site


def _lot_form(site_id: int | None, submitted: bool = False) -> LotForm:
    form = LotForm(prefix="lot") if submitted else LotForm(prefix="lot", formdata=None)
    form.arm.choices = [SelectChoice("", "None (open label)")] + [
        SelectChoice(code, label) for code, label in queries.arm_labels(get_db()).items()
    ]
    places = queries.storage_of(get_db(), site_id) if site_id else []
    form.storage.choices = [SelectChoice("", "— none —")] + [
        SelectChoice(s.name, s.name) for s in places
    ]
    return form


def _stock_page(
    status: int = 200,
    lot_form: LotForm | None = None,
    registration_form: RegistrationForm | None = None,
    storage_form: StorageForm | None = None,
) -> ResponseReturnValue:
    db, user = get_db(), signed_in_user()
    site = db.get(Site, user.site_id) if user.site_id else None
    return render_template(
        "pharmacy/stock.html",
        rows=presenters.stock(db, user),
        site=site,
        registration=queries.registration_of(db, site.id) if site else None,
        storage=queries.storage_of(db, site.id) if site else [],
        lot_form=lot_form or _lot_form(user.site_id),
        registration_form=registration_form
        or RegistrationForm(prefix="registration", formdata=None),
        storage_form=storage_form or StorageForm(prefix="storage", formdata=None),
        may_record=can(Permission.INVENTORY_RECORD) and site is not None,
        arm_labels=queries.arm_labels(db),
    ), status


@bp.route("/inventory/")
@requires(Permission.INVENTORY_VIEW)
def stock() -> ResponseReturnValue:
    return _stock_page()


def _own_site() -> Site:
    user = signed_in_user()
    site = get_db().get(Site, user.site_id) if user.site_id else None
    if site is None:
        abort(404, description="The ledger is kept by a site's pharmacist.")
    return site


@bp.route("/inventory/lots", methods=["POST"])
@requires(Permission.INVENTORY_RECORD)
def lot_create() -> ResponseReturnValue:
    site = _own_site()
    form = _lot_form(site.id, submitted=True)
    lot, status = attempt(
        form,
        lambda: services.create_lot(
            get_db(),
            current_actor(),
            signed_in_user(),
            site=site.code,
            product=form.product.data or "",
            lot=form.lot.data or "",
            strength_mg=float(form.strength_mg.data or 0),
            expires_on=form.expires_on.data,
            arm=form.arm.data or None,
            storage=form.storage.data or None,
        ),
    )
    if lot is None:
        return _stock_page(status, lot_form=form)
    flash(f"Lot {lot.lot_number} is on file; record its receipt next.", "success")
    return redirect(url_for("pharmacy.lot_detail", lot_id=lot.id))


@bp.route("/inventory/registration", methods=["POST"])
@requires(Permission.INVENTORY_RECORD)
def registration() -> ResponseReturnValue:
    site = _own_site()
    form = RegistrationForm(prefix="registration")
    row, status = attempt(
        form,
        lambda: services.register_site(
            get_db(),
            current_actor(),
            site.code,
            number=form.number.data or "",
            registrant=form.registrant.data or "",
            expires_on=form.expires_on.data,
        ),
    )
    if row is None:
        return _stock_page(status, registration_form=form)
    flash(f"{site.code}'s DEA registration {row.number} is on file.", "success")
    return redirect(url_for("pharmacy.stock"))


@bp.route("/inventory/storage", methods=["POST"])
@requires(Permission.INVENTORY_RECORD)
def storage() -> ResponseReturnValue:
    site = _own_site()
    form = StorageForm(prefix="storage")
    row, status = attempt(
        form,
        lambda: services.add_storage(
            get_db(),
            current_actor(),
            signed_in_user(),
            site.code,
            name=form.name.data or "",
            description=form.description.data,
        ),
    )
    if row is None:
        return _stock_page(status, storage_form=form)
    flash(f"Storage location {row.name} added.", "success")
    return redirect(url_for("pharmacy.stock"))


def _entry_forms(
    lot: DrugLot, view: presenters.LotView, submitted: EntryForm | None
) -> dict[str, EntryForm]:
    db = get_db()
    forms = {}
    sessions = [
        SelectChoice(str(i), label) for i, label in queries.open_dosing_sessions(db, lot.site_id)
    ]
    dispensings = [
        SelectChoice(str(d.id), f"{d.number}: {d.use.unused_units} unused of {d.units}")
        for d in queries.lot_dispensings(db, lot.id)
        if not d.corrected and d.use.unused_units > 0
    ]
    reversible = [
        SelectChoice(
            str(e.id), f"#{e.id} {e.title.lower()}, {e.units} units, {e.occurred_at:%Y-%m-%d}"
        )
        for e in view.entries
        if e.id is not None and e.kind != EntryKind.CORRECTION and e.reversed_by is None
    ]
    for kind in ENTRY_FIELDS:
        if submitted is not None and submitted.kind.data == kind:
            form = submitted
        else:
            form = EntryForm(prefix=kind, formdata=None)
            form.kind.data = kind
        form.session_id.choices = [SelectChoice("", "— choose —"), *sessions]
        form.dispensing_id.choices = [SelectChoice("", "— choose —"), *dispensings]
        form.reverses.choices = [SelectChoice("", "— choose —"), *reversible]
        forms[kind] = form
    return forms


def _lot_page(
    lot: DrugLot, status: int = 200, submitted: Any = None, open_form: str = ""
) -> ResponseReturnValue:
    db, user = get_db(), signed_in_user()
    view = presenters.lot_view(db, user, lot)
    may_record = can(Permission.INVENTORY_RECORD) and user.site_id == lot.site_id
    return render_template(
        "pharmacy/lot.html",
        lot=view,
        forms=_entry_forms(lot, view, submitted if isinstance(submitted, EntryForm) else None)
        if may_record
        else {},
        fields=ENTRY_FIELDS,
        help=ENTRY_HELP,
        # One form per row, each with its own prefix (field ids stay unique on the page).
        loss_forms={
            e.id: submitted
            if isinstance(submitted, LossReportForm) and open_form == f"loss-{e.id}"
            else LossReportForm(prefix=f"loss{e.id}", formdata=None)
            for e in view.entries
            if e.id is not None and e.kind == EntryKind.LOSS
        },
        explanation_forms={
            e.id: submitted
            if isinstance(submitted, ExplanationForm) and open_form == f"count-{e.id}"
            else ExplanationForm(prefix=f"count{e.id}", formdata=None)
            for e in view.entries
            if e.id is not None and e.kind == EntryKind.COUNT
        },
        may_record=may_record,
        may_explain=can(Permission.INVENTORY_EXPLAIN) and user.site_id == lot.site_id,
        open_form=open_form,
        now=utcnow(),
        arm_labels=queries.arm_labels(db),
        checks=zip(
            LOT_CHECKS,
            view.checks(utcnow()),
            strict=True,
        ),
    ), status


@bp.route("/inventory/lots/<int:lot_id>")
@requires(Permission.INVENTORY_VIEW)
def lot_detail(lot_id: int) -> ResponseReturnValue:
    return _lot_page(queries.get_lot(get_db(), signed_in_user(), lot_id))


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@bp.route("/inventory/lots/<int:lot_id>/entries/<kind>", methods=["POST"])
@requires(Permission.INVENTORY_RECORD)
@password_check_limit
def entry_create(lot_id: int, kind: str) -> ResponseReturnValue:
    if kind not in ENTRY_FIELDS:
        abort(404)
    db, user = get_db(), signed_in_user()
    lot = queries.get_lot(db, user, lot_id)
    view = presenters.lot_view(db, user, lot)
    form = EntryForm(prefix=kind)
    form.kind.data = kind
    _entry_forms(lot, view, form)
    witnesses = [
        services.Witness(form.witness_1.data or "", form.password_1.data or ""),
        services.Witness(form.witness_2.data or "", form.password_2.data or ""),
    ]
    action: Callable[[], Any] = lambda: services.record_entry(  # noqa: E731
        db,
        current_actor(),
        user,
        lot,
        kind=kind,
        occurred_at=form.occurred_at.data,  # type: ignore[arg-type]  # required: set once the form validates
        units=form.units.data,
        supplier=form.supplier.data,
        dea_form_222=form.dea_form_222.data,
        witness=form.witness.data,
        session_id=_int(form.session_id.data),
        dispensing_id=_int(form.dispensing_id.data),
        dea_form_41=form.dea_form_41.data,
        witnesses=[w for w in witnesses if w.username] if kind == "destruction" else [],
        description=form.description.data,
        counted_units=form.counted_units.data,
        explanation=form.explanation.data,
        reverses=_int(form.reverses.data),
        reason=form.reason.data,
    )
    entry, status = attempt(form, action)
    if entry is None:
        return _lot_page(lot, status, form, open_form=kind)
    flash(
        f"{presenters.KIND_TITLES[EntryKind(kind)]} of {entry.units} units recorded "
        f"(entry #{entry.id}).",
        "success",
    )
    return redirect(url_for("pharmacy.lot_detail", lot_id=lot.id, _anchor="ledger"))


@bp.route("/inventory/entries/<int:entry_id>/loss-reports", methods=["POST"])
@requires(Permission.INVENTORY_RECORD)
def loss_report(entry_id: int) -> ResponseReturnValue:
    db, user = get_db(), signed_in_user()
    entry, lot = services.get_entry(db, user, entry_id, EntryKind.LOSS)
    form = LossReportForm(prefix=f"loss{entry_id}")
    row, status = attempt(
        form,
        lambda: services.report_loss(
            db,
            current_actor(),
            user,
            entry,
            report=form.report.data or "",
            reference=form.reference.data or "",
            reported_at=form.reported_at.data,  # type: ignore[arg-type]  # required: set once the form validates
        ),
    )
    if row is None:
        return _lot_page(lot, status, form, open_form=f"loss-{entry.id}")
    flash(f"The report of loss #{entry.id} is on file.", "success")
    return redirect(url_for("pharmacy.lot_detail", lot_id=lot.id, _anchor="ledger"))


@bp.route("/inventory/entries/<int:entry_id>/explanation", methods=["POST"])
@requires(Permission.INVENTORY_EXPLAIN)
def explanation(entry_id: int) -> ResponseReturnValue:
    db, user = get_db(), signed_in_user()
    entry, lot = services.get_entry(db, user, entry_id, EntryKind.COUNT)
    form = ExplanationForm(prefix=f"count{entry_id}")
    row, status = attempt(
        form,
        lambda: services.explain_count(
            db, current_actor(), user, entry, explanation=form.explanation.data or ""
        ),
    )
    if row is None:
        return _lot_page(lot, status, form, open_form=f"count-{entry.id}")
    flash(f"Count #{entry.id} is explained.", "success")
    return redirect(url_for("pharmacy.lot_detail", lot_id=lot.id, _anchor="ledger"))


def _log_context(lot: DrugLot) -> dict[str, Any]:
    db, user = get_db(), signed_in_user()
    view = presenters.lot_view(db, user, lot)
    return {
        "lot": view,
        "site": _site_of(lot),
        "generated_at": utcnow(),
        "generated_by": user.printed_name,
    }


@bp.route("/inventory/lots/<int:lot_id>/log")
@requires(Permission.INVENTORY_VIEW)
def accountability_log(lot_id: int) -> ResponseReturnValue:
    """The lot's accountability log, laid out as the record an inspector reads; ``?format=pdf``
    gives the same as a PDF (an audited export)."""
    db, user = get_db(), signed_in_user()
    lot = queries.get_lot(db, user, lot_id)
    context = _log_context(lot)
    if request.args.get("format") != "pdf":
        return render_template("pharmacy/log.html", **context)
    from weasyprint import HTML

    html = render_template("pharmacy/log_pdf.html", **context)
    handle = io.BytesIO()
    HTML(string=html, base_url=request.url_root).write_pdf(handle)
    # A GET reads only: the export's own audit event is a unit of work of its own.
    with write_unit(db) as writes:
        record_event(
            writes,
            current_actor(),
            "report.export",
            "accountability_log",
            lot.id,
            new={"format": "pdf", "lot": lot.id, "entries": len(context["lot"].entries)},
        )
    return Response(
        handle.getvalue(),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="accountability-log-lot-{lot.id}.pdf"'
        },
    )


@bp.route("/inventory/reconciliation")
@requires(Permission.INVENTORY_VIEW)
def reconciliation() -> ResponseReturnValue:
    """Every lot's terms of the balance, its last count and the checks C20 to C23."""
    db, user = get_db(), signed_in_user()
    rows = presenters.stock(db, user)
    now = utcnow()
    results = {row.lot.id: row.lot.checks(now) for row in rows}
    return render_template(
        "pharmacy/reconciliation.html", rows=rows, results=results, checks=LOT_CHECKS, now=now
    )
