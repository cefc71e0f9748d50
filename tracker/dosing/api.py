"""Dosing records in the JSON API: doses, vital signs, alert acknowledgements, effects."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    AcknowledgementIn,
    AlertOut,
    DoseIn,
    DoseOut,
    EffectsIn,
    EffectsOut,
    VitalsIn,
    VitalsOut,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.dosing import services
from tracker.protocol.accountability import dispensing_number
from tracker.security import Permission, authenticated_user, requires
from tracker.sessions.api import therapy_session_for_api


@api_route(
    bp,
    "/sessions/<int:session_id>/doses",
    "POST",
    tag="dosing",
    status=201,
    summary="Record a dose (every dose rule of the protocol applies)",
    body=DoseIn,
    response=DoseOut,
)
@requires(Permission.SESSIONS_RECORD)
def dose_record(session_id: int) -> ResponseReturnValue:
    body = parse_body(DoseIn)
    dose = services.record_dose(
        get_db(),
        current_actor(),
        therapy_session_for_api(session_id),
        administered_at=body.administered_at,
        amount_mg=body.amount_mg,
        kind=body.kind,
        breach_justification=body.breach_justification,
        dispensing_id=body.dispensing_id,
        time_confirmed=body.confirm_time,
    )
    out = DoseOut.model_validate(dose, from_attributes=True)
    if dose.dispensing_id is not None:
        out.dispensing = dispensing_number(dose.dispensing_id)
    return out.model_dump(mode="json"), 201


@api_route(
    bp,
    "/sessions/<int:session_id>/vitals",
    "POST",
    tag="dosing",
    status=201,
    summary="Record vital signs; each threshold reached raises an alert",
    body=VitalsIn,
    response=VitalsOut,
)
@requires(Permission.SESSIONS_RECORD)
def vitals_record(session_id: int) -> ResponseReturnValue:
    body = parse_body(VitalsIn)
    values = body.model_dump()
    values["time_confirmed"] = values.pop("confirm_time")
    reading = services.record_vital_signs(
        get_db(), current_actor(), therapy_session_for_api(session_id), **values
    )
    return VitalsOut.model_validate(reading, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/alerts/<int:alert_id>/acknowledgement",
    "POST",
    tag="dosing",
    status=201,
    summary="Acknowledge a vital-sign alert with a note",
    body=AcknowledgementIn,
    response=AlertOut,
)
@requires(Permission.SESSIONS_RECORD)
def alert_acknowledge(alert_id: int) -> ResponseReturnValue:
    body = parse_body(AcknowledgementIn)
    alert = services.get_alert(get_db(), authenticated_user(), alert_id)
    services.acknowledge_alert(get_db(), current_actor(), alert, body.note)
    return AlertOut.model_validate(alert, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/sessions/<int:session_id>/effects",
    "PUT",
    tag="dosing",
    summary="The effects checklist of a dosing session (or 'none observed')",
    body=EffectsIn,
    response=EffectsOut,
)
@requires(Permission.SESSIONS_RECORD)
def effects_record(session_id: int) -> ResponseReturnValue:
    body = parse_body(EffectsIn)
    record = services.record_effects(
        get_db(),
        current_actor(),
        therapy_session_for_api(session_id),
        effects=body.effects,
        none_observed=body.none_observed,
        note=body.note,
    )
    return EffectsOut.model_validate(record, from_attributes=True).model_dump(mode="json")
