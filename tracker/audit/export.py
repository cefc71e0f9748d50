"""The audit trail as rows, for the CSV export (streamed, never held whole in memory)."""

from __future__ import annotations

import json
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


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def audit_rows(
    session: Session, filters: Sequence[sa.ColumnElement[bool]] = ()
) -> Iterator[tuple[Any, ...]]:
    table = AuditEvent.__table__
    query = sa.select(table).where(*filters).order_by(table.c.seq)
    for row in session.execute(query.execution_options(yield_per=EXPORT_BATCH)):
        yield (
            row.seq,
            row.occurred_at.isoformat(),
            row.actor,
            row.role,
            row.action,
            row.entity_type,
            row.entity_id,
            _json(row.old_values),
            _json(row.new_values),
            row.reason,
            row.ip_address,
            row.prev_hash,
            row.hash,
        )
