"""Every data export is on the audit trail (and checkpointed): who took which standard, in
which format, of which site, with or without the arms, against which head of the chain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tracker.audit.models import AuditEvent
from tracker.audit.services import Actor, head, record_event
from tracker.exchange.scope import ExportScope


def record_export(
    db: Session,
    actor: Actor,
    standard: str,
    fmt: str,
    scope: ExportScope,
    subject: str | None = None,
    against: tuple[int, str] | None = None,
) -> AuditEvent:
    """The export as an audit event, in the caller's unit of work. ``audit_head`` is the head
    the export was made against: the head now, for a download recorded before its first byte
    (the export's own event follows), or ``against``, the head in the snapshot a background
    job made its file from."""
    seq, head_hash = against if against is not None else head(db)
    return record_event(
        db,
        actor,
        "data.export",
        standard,
        subject,
        new={
            "format": fmt,
            "site": scope.covered_site,
            "arms": scope.arms,
            "audit_head": head_hash,
            "audit_events": seq,
        },
    )
