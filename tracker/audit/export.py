"""The audit trail as rows, for the CSV export (streamed, never held whole in memory)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.models import AuditEvent

AUDIT_CSV_HEADER = (
    "seq",
    "occurred_at",
    "actor",
    "role",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
    "ip_address",
    "prev_hash",
    "hash",
)
EXPORT_BATCH = 2000


def _stored_json(text: str | None) -> str:
    # The values as stored: canonical JSON (tracker.db.canonical_json), so nothing is parsed
    # and written again per row. JSON null and SQL NULL both read as an empty cell.
    return "" if text is None or text == "null" else text


def audit_rows(
    session: Session, filters: Sequence[sa.ColumnElement[bool]] = ()
) -> Iterator[tuple[Any, ...]]:
    table = AuditEvent.__table__
    columns = [
        sa.cast(column, sa.Text).label(column.name)
        if column.name in ("old_values", "new_values")
        else column
        for column in table.c
    ]
    query = sa.select(*columns).where(*filters).order_by(table.c.seq)
    for row in session.execute(query.execution_options(yield_per=EXPORT_BATCH)):
        yield (
            row.seq,
            row.occurred_at.isoformat(),
            row.actor,
            row.role,
            row.action,
            row.entity_type,
            row.entity_id,
            _stored_json(row.old_values),
            _stored_json(row.new_values),
            row.reason,
            row.ip_address,
            row.prev_hash,
            row.hash,
        )
