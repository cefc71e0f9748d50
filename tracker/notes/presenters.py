"""What the pages show of notes: each note with its corrections, and the correction forms."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_wtf import FlaskForm

from tracker.notes.forms import AmendNoteForm
from tracker.notes.models import Note

Submitted = dict[str, FlaskForm]


@dataclass
class NoteThread:
    """A note and its corrections, oldest version first."""

    versions: list[Note] = field(default_factory=list)

    @property
    def root_id(self) -> int:
        return self.versions[0].id

    @property
    def latest(self) -> Note:
        return self.versions[-1]

    @property
    def session_id(self) -> int | None:
        return self.versions[0].session_id


def note_threads(notes: list[Note]) -> list[NoteThread]:
    threads: dict[int, NoteThread] = {}
    for note in sorted(notes, key=lambda n: (n.root_id or n.id, n.version)):
        threads.setdefault(note.root_id or note.id, NoteThread()).versions.append(note)
    return sorted(threads.values(), key=lambda t: t.versions[0].created_at)


def amend_prefix(note_id: int) -> str:
    return f"amend{note_id}"


def amend_forms(threads: list[NoteThread], submitted: Submitted) -> dict[int, FlaskForm]:
    forms: dict[int, FlaskForm] = {}
    for thread in threads:
        prefix = amend_prefix(thread.latest.id)
        forms[thread.latest.id] = submitted.get(prefix) or AmendNoteForm(
            prefix=prefix, formdata=None, data={"text": thread.latest.text}
        )
    return forms
