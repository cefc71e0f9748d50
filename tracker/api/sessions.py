"""Sessions, dosing records, safety records and notes in the JSON API."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    AcknowledgementIn,
    AdverseEventAssessmentIn,
    AdverseEventCreated,
    AdverseEventIn,
    AdverseEventList,
    AdverseEventOut,
    AdverseEventPatch,
    AlertOut,
    DoseIn,
    DoseOut,
    EffectsIn,
    EffectsOut,
    NoteAmendmentIn,
    NoteIn,
    NoteList,
    NoteOut,
    PregnancyTestIn,
    PregnancyTestOut,
    ScreenIn,
    ScreenOut,
    SessionIn,
    SessionList,
    SessionOut,
    SessionPatch,
    SideEffectIn,
    SideEffectOut,
    VitalsIn,
    VitalsOut,
)
from tracker.auth.session import current_actor
from tracker.db import get_session
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.security import Permission, authenticated_user, requires
from tracker.sessions import queries, services
from tracker.sessions.models import Note, TherapySession


def _participant(participant_id: int) -> Participant:
    return participant_queries.get_participant(get_session(), authenticated_user(), participant_id)


def _session(session_id: int) -> TherapySession:
    return services.get_session_for(get_session(), authenticated_user(), session_id)


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
        record = queries.dosing_record(get_session(), row)
        out.doses = [DoseOut.model_validate(d, from_attributes=True) for d in record.doses]
        out.vitals = [VitalsOut.model_validate(r, from_attributes=True) for r in record.readings]
        out.effects = (
            EffectsOut.model_validate(record.effects, from_attributes=True)
            if record.effects
            else None
        )
    return out


def _note_out(note: Note) -> NoteOut:
    return NoteOut(
        id=note.id,
        root_id=note.root_id,
        version=note.version,
        participant_id=note.participant_id,
        session_id=note.session_id,
        text=note.text,
        amendment_reason=note.amendment_reason,
        author=note.author.username,
        created_at=note.created_at,
    )


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
        get_session(),
        current_actor(),
        _participant(participant_id),
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
    rows = queries.sessions_of(get_session(), _participant(participant_id).id)
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
    return session_out(_session(session_id), detail=True).model_dump(mode="json")


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
    row = services.update_session(get_session(), current_actor(), _session(session_id), **changes)
    return session_out(row, detail=True).model_dump(mode="json")


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
        get_session(),
        current_actor(),
        _session(session_id),
        administered_at=body.administered_at,
        amount_mg=body.amount_mg,
        kind=body.kind,
        breach_justification=body.breach_justification,
    )
    return DoseOut.model_validate(dose, from_attributes=True).model_dump(mode="json"), 201


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
    reading = services.record_vital_signs(
        get_session(), current_actor(), _session(session_id), **body.model_dump()
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
    alert = services.get_alert(get_session(), authenticated_user(), alert_id)
    services.acknowledge_alert(get_session(), current_actor(), alert, body.note)
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
        get_session(),
        current_actor(),
        _session(session_id),
        effects=body.effects,
        none_observed=body.none_observed,
        note=body.note,
    )
    return EffectsOut.model_validate(record, from_attributes=True).model_dump(mode="json")


@api_route(
    bp,
    "/sessions/<int:session_id>/notes",
    "POST",
    tag="notes",
    status=201,
    summary="A session note (plain text, append-only)",
    body=NoteIn,
    response=NoteOut,
)
@requires(Permission.SESSIONS_RECORD)
def session_note(session_id: int) -> ResponseReturnValue:
    body = parse_body(NoteIn)
    row = _session(session_id)
    participant = get_session().get_one(Participant, row.participant_id)
    note = services.add_note(
        get_session(), current_actor(), participant, body.text, session_id=row.id
    )
    return _note_out(note).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/notes",
    "POST",
    tag="notes",
    status=201,
    summary="A participant note (plain text, append-only)",
    body=NoteIn,
    response=NoteOut,
)
@requires(Permission.SESSIONS_RECORD)
def participant_note(participant_id: int) -> ResponseReturnValue:
    body = parse_body(NoteIn)
    note = services.add_note(
        get_session(), current_actor(), _participant(participant_id), body.text
    )
    return _note_out(note).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/notes",
    "GET",
    tag="notes",
    summary="Every version of every note of the participant",
    response=NoteList,
)
@requires(Permission.PARTICIPANTS_VIEW)
def note_list(participant_id: int) -> ResponseReturnValue:
    notes = queries.notes_of(get_session(), _participant(participant_id).id)
    return NoteList(notes=[_note_out(n) for n in notes]).model_dump(mode="json")


@api_route(
    bp,
    "/notes/<int:note_id>/amendments",
    "POST",
    tag="notes",
    status=201,
    summary="Correct a note: a new version with a reason; the old one stays readable",
    body=NoteAmendmentIn,
    response=NoteOut,
)
@requires(Permission.SESSIONS_RECORD)
def note_amend(note_id: int) -> ResponseReturnValue:
    body = parse_body(NoteAmendmentIn)
    note = services.get_note(get_session(), authenticated_user(), note_id)
    version = services.amend_note(get_session(), current_actor(), note, body.text, body.reason)
    return _note_out(version).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/side-effects",
    "POST",
    tag="safety",
    status=201,
    summary="Record a side effect",
    body=SideEffectIn,
    response=SideEffectOut,
)
@requires(Permission.SESSIONS_RECORD)
def side_effect_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(SideEffectIn)
    row = services.record_side_effect(
        get_session(), current_actor(), _participant(participant_id), **body.model_dump()
    )
    return SideEffectOut.model_validate(row, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/adverse-events",
    "POST",
    tag="safety",
    status=201,
    summary="Record an adverse event; a serious one places the participant on hold",
    body=AdverseEventIn,
    response=AdverseEventCreated,
)
@requires(Permission.SESSIONS_RECORD)
def adverse_event_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(AdverseEventIn)
    participant = _participant(participant_id)
    event = services.record_adverse_event(
        get_session(), current_actor(), participant, **body.model_dump()
    )
    return AdverseEventCreated(
        adverse_event=AdverseEventOut.model_validate(event, from_attributes=True),
        participant_state=participant.state,
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/adverse-events",
    "GET",
    tag="safety",
    summary="The participant's adverse events",
    response=AdverseEventList,
)
@requires(Permission.PARTICIPANTS_VIEW)
def adverse_event_list(participant_id: int) -> ResponseReturnValue:
    events = queries.adverse_events_of(get_session(), _participant(participant_id).id)
    return AdverseEventList(
        adverse_events=[AdverseEventOut.model_validate(e, from_attributes=True) for e in events]
    ).model_dump(mode="json")


@api_route(
    bp,
    "/adverse-events/<int:event_id>/assessment",
    "POST",
    tag="safety",
    status=201,
    summary="The investigator's assessment of relatedness and expectedness",
    body=AdverseEventAssessmentIn,
    response=AdverseEventOut,
)
@requires(Permission.ADVERSE_EVENTS_ASSESS)
def adverse_event_assess(event_id: int) -> ResponseReturnValue:
    body = parse_body(AdverseEventAssessmentIn)
    event = services.get_adverse_event(get_session(), authenticated_user(), event_id)
    services.assess_adverse_event(get_session(), current_actor(), event, **body.model_dump())
    return AdverseEventOut.model_validate(event, from_attributes=True).model_dump(mode="json"), 201


@api_route(
    bp,
    "/adverse-events/<int:event_id>",
    "PATCH",
    tag="safety",
    summary="Follow-up: outcome, resolution, report time",
    body=AdverseEventPatch,
    response=AdverseEventOut,
)
@requires(Permission.SESSIONS_RECORD)
def adverse_event_update(event_id: int) -> ResponseReturnValue:
    body = parse_body(AdverseEventPatch)
    event = services.get_adverse_event(get_session(), authenticated_user(), event_id)
    services.update_adverse_event(get_session(), current_actor(), event, **body.model_dump())
    return AdverseEventOut.model_validate(event, from_attributes=True).model_dump(mode="json")


@api_route(
    bp,
    "/participants/<int:participant_id>/suicidality-screens",
    "POST",
    tag="safety",
    status=201,
    summary="A C-SSRS style screen; a positive one places the participant on hold",
    body=ScreenIn,
    response=ScreenOut,
)
@requires(Permission.SESSIONS_RECORD)
def screen_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(ScreenIn)
    participant = _participant(participant_id)
    screen = services.record_suicidality_screen(
        get_session(), current_actor(), participant, **body.model_dump()
    )
    return ScreenOut(
        id=screen.id,
        screened_at=screen.screened_at,
        ideation=screen.ideation,
        intent=screen.intent,
        plan=screen.plan,
        behaviour=screen.behaviour,
        positive=screen.positive,
        participant_state=participant.state,
    ).model_dump(mode="json"), 201


@api_route(
    bp,
    "/participants/<int:participant_id>/pregnancy-tests",
    "POST",
    tag="safety",
    status=201,
    summary="A pregnancy test result",
    body=PregnancyTestIn,
    response=PregnancyTestOut,
)
@requires(Permission.SESSIONS_RECORD)
def pregnancy_test_record(participant_id: int) -> ResponseReturnValue:
    body = parse_body(PregnancyTestIn)
    row = services.record_pregnancy_test(
        get_session(),
        current_actor(),
        _participant(participant_id),
        tested_at=body.tested_at,
        result=body.result,
    )
    return PregnancyTestOut.model_validate(row, from_attributes=True).model_dump(mode="json"), 201
