"""Dosing pages: vital signs, doses, alert acknowledgements and effects on the session
page. Each POST parses a form, calls one service and redirects; a refusal re-renders the
session page with every reason and a 4xx status, so the edge rolls back what was half-done."""

from __future__ import annotations

from flask import Blueprint, flash
from flask.typing import ResponseReturnValue

from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.dosing import services
from tracker.dosing.forms import AcknowledgeForm, DoseForm, EffectsForm, VitalSignsForm
from tracker.form_fields import label_of
from tracker.pages import attempt, signed_in_user
from tracker.security import Permission, requires
from tracker.sessions.views import (
    back_to_session,
    render_session,
    therapy_session_for_page,
)

bp = Blueprint("dosing", __name__)


@bp.route("/sessions/<int:session_id>/vitals", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def vitals(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    form = VitalSignsForm(prefix="vitals")
    reading, status = attempt(
        form,
        lambda: services.record_vital_signs(
            get_db(),
            current_actor(),
            row,
            measured_at=form.measured_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            systolic=form.systolic.data or 0,
            diastolic=form.diastolic.data or 0,
            heart_rate=form.heart_rate.data or 0,
            temperature_c=form.temperature_c.data or 0.0,
            time_confirmed=bool(form.confirm_time.data),
        ),
    )
    if reading is None:
        return render_session(row, participant, "vitals", form, status)
    if reading.alerts:
        signs = ", ".join(
            f"{label_of(a.sign)} {a.value:g} ≥ {a.threshold:g}" for a in reading.alerts
        )
        flash(
            f"Reading at {reading.measured_at:%H:%M} UTC breaches a threshold: {signs}. "
            "Acknowledge the alert with a note.",
            "error",
        )
        return back_to_session(row, "alerts-title")
    flash(f"Reading at {reading.measured_at:%H:%M} UTC recorded.", "success")
    return back_to_session(row, "record-title")


@bp.route("/sessions/<int:session_id>/doses", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def dose(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    form = DoseForm(prefix="dose")
    given, status = attempt(
        form,
        lambda: services.record_dose(
            get_db(),
            current_actor(),
            row,
            administered_at=form.administered_at.data,  # type: ignore[arg-type]  # required: set once the form validates
            amount_mg=form.amount_mg.data or 0,
            kind=form.kind.data or "",
            # The service decides who may justify a breach, for the API and the page alike.
            breach_justification=form.breach_justification.data,
            dispensing_id=int(form.dispensing_id.data)
            if (form.dispensing_id.data or "").isdigit()
            else None,
            time_confirmed=bool(form.confirm_time.data),
        ),
    )
    if given is None:
        return render_session(row, participant, "dose", form, status)
    flash(
        f"{label_of(given.kind)} dose of {given.amount_mg} mg at "
        f"{given.administered_at:%H:%M} UTC recorded.",
        "success",
    )
    return back_to_session(row, "record-title")


@bp.route("/alerts/<int:alert_id>/acknowledgement", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def acknowledge(alert_id: int) -> ResponseReturnValue:
    alert = services.get_alert(get_db(), signed_in_user(), alert_id)
    row, participant = therapy_session_for_page(alert.session_id)
    prefix = f"ack{alert.id}"
    form = AcknowledgeForm(prefix=prefix)
    done, status = attempt(
        form,
        lambda: services.acknowledge_alert(get_db(), current_actor(), alert, form.note.data or ""),
    )
    if done is None:
        return render_session(row, participant, prefix, form, status)
    flash(f"Alert ({label_of(alert.sign)} {alert.value:g}) acknowledged.", "success")
    return back_to_session(row, "alerts-title")


@bp.route("/sessions/<int:session_id>/effects", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def effects(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    form = EffectsForm(prefix="effects")
    done, status = attempt(
        form,
        lambda: services.record_effects(
            get_db(),
            current_actor(),
            row,
            effects=form.effects.data or [],
            none_observed=bool(form.none_observed.data),
            note=form.note.data,
        ),
    )
    if done is None:
        return render_session(row, participant, "effects", form, status)
    flash("Effects checklist saved.", "success")
    return back_to_session(row, "effects-title")
