"""Notes in the JSON API, and their corrections."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from tracker.api import bp
from tracker.api.openapi import api_route, parse_body
from tracker.api.schemas import (
    NoteAmendmentIn,
    NoteIn,
    NoteList,
    NoteOut,
)
from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.notes import queries, services
from tracker.notes.models import Note
from tracker.participants.models import Participant
from tracker.security import Permission, authenticated_user, requires
from tracker.sessions.api import participant_for_api, therapy_session_for_api


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
    row = therapy_session_for_api(session_id)
    participant = get_db().get_one(Participant, row.participant_id)
    note = services.add_note(get_db(), current_actor(), participant, body.text, session_id=row.id)
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
        get_db(), current_actor(), participant_for_api(participant_id), body.text
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
    notes = queries.notes_of(get_db(), participant_for_api(participant_id).id)
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
    note = services.get_note(get_db(), authenticated_user(), note_id)
    version = services.amend_note(get_db(), current_actor(), note, body.text, body.reason)
    return _note_out(version).model_dump(mode="json"), 201
