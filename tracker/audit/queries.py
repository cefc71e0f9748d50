"""Reading the audit trail with filters, newest first, paged by sequence number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    # The participant's records by entity type (see participant_clause).
    participant_records: Mapping[str, sa.Select[Any]] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    def described(self) -> dict[str, object]:
        """The filter as the audit trail records it (the values given, not the selects)."""
        return {k: v for k, v in vars(self).items() if v and k != "participant_records"}

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        table = AuditEvent.__table__.c
        clauses = []
        if self.participant:
            clauses.append(participant_clause(self.participant, self.participant_records))
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


def participant_clause(
    study_id: str, owned: Mapping[str, sa.Select[Any]]
) -> sa.ColumnElement[bool]:
    """The events about one participant (by study id): those whose entity is the participant;
    those that name it in their values (``"participant": "<study id>"``, as the record
    services write); and those whose entity is one of its records: ``owned`` maps an entity
    type to the select of the participant's record ids of that type (a session update, an
    alert acknowledged, an assessment, a note corrected). The features above the audit trail
    know their records; the caller hands them in.

    The values are read with the database's JSON operators (``->>`` on PostgreSQL,
    ``JSON_EXTRACT`` on SQLite) and compared for equality: no pattern, nothing to escape.
    """
    table = AuditEvent.__table__.c
    study_id = study_id.strip().upper()
    return sa.or_(
        sa.and_(table.entity_type == "participant", table.entity_id == study_id),
        table.new_values["participant"].as_string() == study_id,
        table.old_values["participant"].as_string() == study_id,
        *(
            sa.and_(table.entity_type == entity_type, table.entity_id.in_(ids))
            for entity_type, ids in owned.items()
        ),
    )


def events_page(
    db: Session, audit_filter: AuditFilter, before_seq: int | None, limit: int
) -> list[AuditEvent]:
    """One page of events, newest first; pass the last seq seen as ``before_seq`` for the next."""
    query = sa.select(AuditEvent).where(*audit_filter.clauses())
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(db.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit)))


def events_after(db: Session, after_seq: int, limit: int) -> list[AuditEvent]:
    """Events in chain order after ``after_seq`` (the API's incremental read)."""
    query = (
        sa.select(AuditEvent)
        .where(AuditEvent.seq > after_seq)
        .order_by(AuditEvent.seq)
        .limit(limit)
    )
    return list(db.scalars(query))


def distinct_actions(db: Session) -> list[str]:
    return list(db.scalars(sa.select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
