"""Append-only notes: a correction is a new version with its reason; nothing is overwritten."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.services import Actor, record_event
from tracker.auth.models import User
from tracker.errors import NotFound
from tracker.notes.models import Note
from tracker.participants import queries as participant_queries
from tracker.participants.models import Participant
from tracker.participants.recording import (
    RECORDING_ROLES,
    raise_problems,
    require_open,
    require_role,
    text_field,
)
from tracker.protocol import RecordKind
from tracker.sessions.services import check_session_of_participant


def add_note(
    db: Session,
    actor: Actor,
    participant: Participant,
    text: str,
    *,
    session_id: int | None = None,
) -> Note:
    """A new note (plain text; always rendered escaped)."""
    require_role(actor, *RECORDING_ROLES)
    require_open(participant, RecordKind.NOTE)
    problems: list[str] = []
    body = text_field(text, "The note", problems)
    raise_problems(problems, "The note was not saved")
    check_session_of_participant(db, participant, session_id)
    note = Note(
        participant_id=participant.id,
        session_id=session_id,
        version=1,
        text=body or "",
        author_id=actor.user_id,
    )
    db.add(note)
    db.flush()
    record_event(
        db,
        actor,
        "note.add",
        "participant",
        participant.study_id,
        new={"note": note.id, "session": session_id, "text": body},
    )
    return note


def amend_note(db: Session, actor: Actor, note: Note, text: str, reason: str) -> Note:
    """A correction: a new version of the note with a reason; earlier versions stay as written."""
    require_role(actor, *RECORDING_ROLES)
    problems: list[str] = []
    body = text_field(text, "The corrected text", problems)
    why = text_field(reason, "The reason for the correction", problems, limit=2000)
    root_id = note.root_id or note.id
    latest = db.scalar(
        sa.select(Note)
        .where(sa.or_(Note.id == root_id, Note.root_id == root_id))
        .order_by(Note.version.desc())
        .limit(1)
    )
    assert latest is not None
    if latest.id != note.id:
        problems.append(f"Only the latest version (v{latest.version}) can be corrected.")
    if body is not None and body == latest.text:
        problems.append("The corrected text is the same as the current version.")
    raise_problems(problems, "The correction was not saved")
    version = Note(
        participant_id=note.participant_id,
        session_id=note.session_id,
        root_id=root_id,
        version=latest.version + 1,
        text=body or "",
        amendment_reason=why,
        author_id=actor.user_id,
    )
    db.add(version)
    db.flush()
    record_event(
        db,
        actor,
        "note.amend",
        "note",
        root_id,
        old={"version": latest.version, "text": latest.text},
        new={"version": version.version, "text": body},
        reason=why,
    )
    return version


def get_note(db: Session, user: User, note_id: int) -> Note:
    note = db.get(Note, note_id)
    if note is None:
        raise NotFound(f"No note {note_id}.")
    participant_queries.get_participant(db, user, note.participant_id)
    return note


def note_history(db: Session, note: Note) -> list[Note]:
    root_id = note.root_id or note.id
    return list(
        db.scalars(
            sa.select(Note)
            .where(sa.or_(Note.id == root_id, Note.root_id == root_id))
            .order_by(Note.version)
        )
    )
