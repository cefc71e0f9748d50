"""The participant's casebook (issue 17): everything on record of one participant, on paper.
The checklist with its signature, consent, every session with its doses and vital-sign charts,
adverse events, notes with every version, the timeline of transitions, and the audit trail's
head at printing. Built from the same reads as the participant page; never an arm."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from tracker.audit.services import head
from tracker.db import utcnow
from tracker.notes.presenters import NoteThread, note_threads
from tracker.notes.queries import notes_of
from tracker.participants import queries as participant_queries
from tracker.participants.models import (
    ChecklistAnswer,
    ChecklistSignature,
    Consent,
    Participant,
    TransitionEvent,
)
from tracker.protocol import ProtocolDefinition
from tracker.protocol.compliance_records import ParticipantRecord
from tracker.reports.exporters import participant_charts
from tracker.reports.records import load_records
from tracker.safety.models import AdverseEvent
from tracker.safety.queries import adverse_events_of
from tracker.study.services import definition_of


@dataclass(frozen=True)
class Casebook:
    participant: Participant
    protocol: ProtocolDefinition
    record: ParticipantRecord
    answers: list[ChecklistAnswer]
    signatures: list[ChecklistSignature]
    consents: list[Consent]
    adverse_events: list[AdverseEvent]
    notes: list[NoteThread]
    timeline: list[TransitionEvent]
    charts: list[tuple[str, Markup]]
    audit_seq: int
    audit_head: str
    printed_at: datetime
    printed_by: str

    @property
    def item_titles(self) -> dict[str, str]:
        return {item.code: item.question for item in self.protocol.checklist}


def casebook(db: Session, participant: Participant, printed_by: str) -> Casebook:
    (record,) = load_records(db, [participant])
    protocol = definition_of(participant.protocol_version)
    seq, chain_head = head(db)
    return Casebook(
        participant=participant,
        protocol=protocol,
        record=record,
        answers=participant_queries.answers_of(db, participant.id),
        signatures=participant_queries.signatures_of(db, participant.id),
        consents=participant_queries.consents_of(db, participant.id),
        adverse_events=adverse_events_of(db, participant.id),
        notes=note_threads(notes_of(db, participant.id)),
        timeline=participant_queries.transitions_of(db, participant.id),
        charts=participant_charts(record, protocol),
        audit_seq=seq,
        audit_head=chain_head,
        printed_at=utcnow(),
        printed_by=printed_by,
    )


def write_casebook_pdf(book: Casebook, render: Any) -> bytes:
    """The casebook as PDF bytes; ``render`` renders a template with the book (the page's
    Jinja environment, so the filters are the app's)."""
    from weasyprint import HTML

    return bytes(HTML(string=render("reports/casebook_pdf.html", book=book)).write_pdf())
