"""The audit trail as rows and as CSV, for the exports (streamed, never held whole in memory)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tracker.audit.models import AuditEvent
from tracker.spreadsheet import FORMULA_TRIGGERS, csv_lines

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
    db: Session, filters: Sequence[sa.ColumnElement[bool]] = ()
) -> Iterator[tuple[Any, ...]]:
    table = AuditEvent.__table__
    columns = [
        sa.cast(column, sa.Text).label(column.name)
        if column.name in ("old_values", "new_values")
        else column
        for column in table.c
    ]
    query = sa.select(*columns).where(*filters).order_by(table.c.seq)
    for row in db.execute(query.execution_options(yield_per=EXPORT_BATCH)):
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


# --- the CSV -----------------------------------------------------------------------------

TEXT_COLUMNS = ("actor", "role", "action", "entity_type", "entity_id", "reason", "ip_address")
JSON_COLUMNS = ("old_values", "new_values")


def _neutralised(expression: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """tracker.spreadsheet.neutralise_cell in SQL; an empty text is written like a
    missing one (COPY would quote it, the csv module does not)."""
    return sa.func.nullif(
        sa.case(
            (sa.func.left(expression, 1).in_(FORMULA_TRIGGERS), sa.literal("'") + expression),
            else_=expression,
        ),
        "",
    )


def _copy_query(filters: Sequence[sa.ColumnElement[bool]]) -> sa.Select[Any]:
    """The export's rows formatted by PostgreSQL exactly as ``audit_rows`` and the csv module
    format them (``datetime.isoformat`` of UTC, stored JSON, neutralised text)."""
    table = AuditEvent.__table__.c
    utc = sa.func.timezone("UTC", table.occurred_at)
    whole_second = sa.cast(sa.func.date_part("microseconds", table.occurred_at), sa.BigInteger)
    occurred_at = (
        sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS')
        + sa.case((whole_second % 1_000_000 == 0, ""), else_=sa.func.to_char(utc, ".US"))
        + "+00:00"
    )
    columns: list[sa.ColumnElement[Any]] = [table.seq, occurred_at.label("occurred_at")]
    for name in AUDIT_CSV_HEADER[2:]:
        column = table[name]
        if name in JSON_COLUMNS:
            columns.append(
                _neutralised(sa.func.nullif(sa.cast(column, sa.Text), "null")).label(name)
            )
        elif name in TEXT_COLUMNS:
            columns.append(_neutralised(column).label(name))
        else:
            columns.append(column)  # the hashes: hexadecimal
    return sa.select(*columns).where(*filters).order_by(table.seq)


class AuditCsv:
    """The audit trail (or the events ``filters`` select) as CSV text, a chunk at a time;
    ``events`` counts the rows once it has been read. PostgreSQL writes it with COPY, several
    times faster than rows through Python; elsewhere the csv module writes the same text (a
    test holds the two to the same bytes)."""

    def __init__(self, db: Session, filters: Sequence[sa.ColumnElement[bool]] = ()) -> None:
        self.session = db
        self.filters = filters
        self.events = 0

    def __iter__(self) -> Iterator[str]:
        if self.session.get_bind().dialect.name == "postgresql":
            return self._copy()
        return self._rows()

    def _rows(self) -> Iterator[str]:
        def counted() -> Iterator[tuple[Any, ...]]:
            for row in audit_rows(self.session, self.filters):
                self.events += 1
                yield row

        return csv_lines(AUDIT_CSV_HEADER, counted(), lineterminator="\n")

    def _copy(self) -> Iterator[str]:
        connection = self.session.connection()
        compiled = _copy_query(self.filters).compile(
            dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
        )
        statement = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER)"
        decoder = codecs.getincrementaldecoder("utf-8")()
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            with cursor.copy(statement, compiled.params) as copy:
                for block in copy:
                    yield decoder.decode(bytes(block))
            yield decoder.decode(b"", final=True)
            self.events = max(cursor.rowcount, 0)
