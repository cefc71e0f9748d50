"""Therapy sessions in the JSON API: scheduling, the list, one session with its dosing
records, and its record (start, end, status, therapists)."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    DoseOut,
    EffectsOut,
    SessionIn,
    SessionList,
    SessionOut,
    SessionPatch,
    VitalsOut,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.dosing import queries as dosing_queries
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.security import Permission, authenticated_user, requires
from tracker.sessions import queries, services
from tracker.sessions.models import TherapySession


def participant_for_api(participant_id: int) -> Participant:
    return participant_queries.get_participant(get_db(), authenticated_user(), participant_id)


def therapy_session_for_api(session_id: int) -> TherapySession:
    return services.get_session_for(get_db(), authenticated_user(), session_id)


def session_out(row: TherapySession, *, detail: bool = False) -> SessionOut:
    out = SessionOut(
        id=row.id,
        participant_id=row.participant_id,
        kind=row.kind,
        cycle=row.cycle,
        scheduled_at=row.scheduled_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        status=row.status,
        overnight_stay=row.overnight_stay,
        therapists=[u.username for u in row.therapists],
    )
    if detail:
        record = dosing_queries.dosing_record(get_db(), row)
        out.doses = [DoseOut.model_validate(d, from_attributes=True) for d in record.doses]
        out.vitals = [VitalsOut.model_validate(r, from_attributes=True) for r in record.readings]
        out.effects = (
            EffectsOut.model_validate(record.effects, from_attributes=True)
            if record.effects
            else None
        )
    return out


@api_route(
    bp,
    "/participants/<int:participant_id>/sessions",
    "POST",
    tag="sessions",
    status=201,
    summary="Schedule a session of the kind the participant's state allows",
    body=SessionIn,
    response=SessionOut,
)
@requires(Permission.SESSIONS_RECORD)
def session_schedule(participant_id: int) -> ResponseReturnValue:
    body = parse_body(SessionIn)
    row = services.schedule_session(
        get_db(),
        current_actor(),
        participant_for_api(participant_id),
        kind=body.kind,
        scheduled_at=body.scheduled_at,
        therapists=body.therapists,
    )
    return session_out(row).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/sessions",
    "GET",
    tag="sessions",
    summary="The participant's sessions",
    response=SessionList,
)
@requires(Permission.PARTICIPANTS_VIEW)
def session_list(participant_id: int) -> ResponseReturnValue:
    rows = queries.sessions_of(get_db(), participant_for_api(participant_id).id)
    return SessionList(sessions=[session_out(r) for r in rows]).model_dump(mode="json")


@api_route(
    bp,
    "/sessions/<int:session_id>",
    "GET",
    tag="sessions",
    summary="One session with its doses, vital signs, alerts and effects",
    response=SessionOut,
)
@requires(Permission.PARTICIPANTS_VIEW)
def session_detail(session_id: int) -> ResponseReturnValue:
    return session_out(therapy_session_for_api(session_id), detail=True).model_dump(mode="json")


@api_route(
    bp,
    "/sessions/<int:session_id>",
    "PATCH",
    tag="sessions",
    summary="Start, end, complete or cancel; overnight stay; therapists (fields sent only)",
    body=SessionPatch,
    response=SessionOut,
)
@requires(Permission.SESSIONS_RECORD)
def session_update(session_id: int) -> ResponseReturnValue:
    body = parse_body(SessionPatch)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    row = services.update_session(
        get_db(), current_actor(), therapy_session_for_api(session_id), **changes
    )
    return session_out(row, detail=True).model_dump(mode="json")
