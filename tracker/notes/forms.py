"""Forms of the notes: they parse input into plain values; the services decide."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length

from tracker.form_fields import (
    MAX_TEXT,
)


class NoteForm(FlaskForm):
    text = TextAreaField(
        "Note",
        validators=[DataRequired(message="Write the note."), Length(max=MAX_TEXT)],
        description="Plain text. Notes are never edited: a correction adds a new version.",
    )


class AmendNoteForm(FlaskForm):
    text = TextAreaField("Corrected text", validators=[DataRequired(), Length(max=MAX_TEXT)])
    reason = StringField(
        "Reason for the correction",
        validators=[DataRequired(message="Give the reason for the correction."), Length(max=2000)],
    )
