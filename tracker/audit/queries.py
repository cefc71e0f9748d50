"""Reading the audit trail with filters, newest first, paged by sequence number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.models import AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    participant: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        table = AuditEvent.__table__.c
        clauses = []
        if self.participant:
            clauses.append(participant_clause(self.participant))
        if self.actor:
            clauses.append(table.actor == self.actor.strip().lower())
        if self.action:
            clauses.append(table.action.startswith(self.action.strip(), autoescape=True))
        if self.entity_type:
            clauses.append(table.entity_type == self.entity_type.strip())
        if self.entity_id:
            clauses.append(table.entity_id == self.entity_id.strip())
        if self.since:
            clauses.append(table.occurred_at >= self.since)
        if self.until:
            clauses.append(table.occurred_at < self.until)
        return clauses


def participant_clause(study_id: str) -> sa.ColumnElement[bool]:
    """The events about one participant (by study id): those whose entity is the participant;
    those that name it in their values (``"participant": "<study id>"``, as the session
    services record); and those whose entity is one of its sessions, adverse events or notes
    (a session update, an alert acknowledged, an assessment, a note corrected).

    The values are read with the database's JSON operators (``->>`` on PostgreSQL,
    ``JSON_EXTRACT`` on SQLite) and compared for equality: no pattern, nothing to escape.
    """
    # Imported here: the audit trail is below every other package.
    from tracker.participants.models import Participant
    from tracker.sessions.models import AdverseEvent, Note, TherapySession

    table = AuditEvent.__table__.c
    study_id = study_id.strip().upper()
    participant_id = (
        sa.select(Participant.id).where(Participant.study_id == study_id).scalar_subquery()
    )

    def owned(entity_type: str, model: type) -> sa.ColumnElement[bool]:
        ids = sa.select(sa.cast(model.id, sa.String)).where(  # type: ignore[attr-defined]
            model.participant_id == participant_id  # type: ignore[attr-defined]
        )
        return sa.and_(table.entity_type == entity_type, table.entity_id.in_(ids))

    return sa.or_(
        sa.and_(table.entity_type == "participant", table.entity_id == study_id),
        table.new_values["participant"].as_string() == study_id,
        table.old_values["participant"].as_string() == study_id,
        owned("session", TherapySession),
        owned("adverse_event", AdverseEvent),
        owned("note", Note),
    )


def events_page(
    session: Session, audit_filter: AuditFilter, before_seq: int | None, limit: int
) -> list[AuditEvent]:
    """One page of events, newest first; pass the last seq seen as ``before_seq`` for the next."""
    query = sa.select(AuditEvent).where(*audit_filter.clauses())
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)))


def events_after(session: Session, after_seq: int, limit: int) -> list[AuditEvent]:
    """Events in chain order after ``after_seq`` (the API's incremental read)."""
    query = (
        sa.select(AuditEvent)
        .where(AuditEvent.seq > after_seq)
        .order_by(AuditEvent.seq)
        .limit(limit)
    )
    return list(session.scalars(query))


def distinct_actions(session: Session) -> list[str]:
    return list(
        session.scalars(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
