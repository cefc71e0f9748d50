"""Notes on the participant page and the session page, and their corrections. A refusal
re-renders the page with every reason and a 4xx status."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask.typing import ResponseReturnValue

from tracker.auth.signin import current_actor
from tracker.db import get_db
from tracker.notes import services
from tracker.notes.forms import AmendNoteForm, NoteForm
from tracker.notes.presenters import amend_prefix
from tracker.pages import attempt, signed_in_user
from tracker.security import Permission, requires
from tracker.sessions.views import (
    back_to_participant,
    back_to_session,
    participant_for_page,
    render_participant_records,
    render_session,
    therapy_session_for_page,
)

bp = Blueprint("notes", __name__)


@bp.route("/participants/<int:participant_id>/notes", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def participant_note(participant_id: int) -> ResponseReturnValue:
    participant = participant_for_page(participant_id)
    form = NoteForm(prefix="note")
    row, status = attempt(
        form,
        lambda: services.add_note(get_db(), current_actor(), participant, form.text.data or ""),
    )
    if row is None:
        return render_participant_records(participant, "note", form, status)
    flash("Note saved.", "success")
    return back_to_participant(participant, "notes-title")


@bp.route("/notes/<int:note_id>/corrections", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def amend_note(note_id: int) -> ResponseReturnValue:
    note = services.get_note(get_db(), signed_in_user(), note_id)
    participant = participant_for_page(note.participant_id)
    prefix = amend_prefix(note.id)
    form = AmendNoteForm(prefix=prefix)
    row, status = attempt(
        form,
        lambda: services.amend_note(
            get_db(), current_actor(), note, form.text.data or "", form.reason.data or ""
        ),
    )
    if row is None:
        if note.session_id is not None:
            therapy_session, _ = therapy_session_for_page(note.session_id)
            return render_session(therapy_session, participant, prefix, form, status)
        return render_participant_records(participant, prefix, form, status)
    flash(
        f"Note corrected: version {row.version} saved; earlier versions stay readable.", "success"
    )
    if note.session_id is not None:
        return redirect(
            url_for("sessions.detail", session_id=note.session_id, _anchor="notes-title")
        )
    return back_to_participant(participant, "notes-title")


@bp.route("/sessions/<int:session_id>/notes", methods=["POST"])
@requires(Permission.SESSIONS_RECORD)
def session_note(session_id: int) -> ResponseReturnValue:
    row, participant = therapy_session_for_page(session_id)
    form = NoteForm(prefix="note")
    done, status = attempt(
        form,
        lambda: services.add_note(
            get_db(), current_actor(), participant, form.text.data or "", session_id=row.id
        ),
    )
    if done is None:
        return render_session(row, participant, "note", form, status)
    flash("Session note saved.", "success")
    return back_to_session(row, "notes-title")
