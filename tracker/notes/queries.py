"""Reading notes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.notes.models import Note


def notes_of(db: Session, participant_id: int) -> list[Note]:
    """Every version of every note, oldest first; a page groups them by root."""
    return list(
        db.scalars(sa.select(Note).where(Note.participant_id == participant_id).order_by(Note.id))
    )
