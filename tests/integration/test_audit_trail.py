from __future__ import annotations

import csv
import io
import itertools

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from tests.factories import make_site
from tracker.audit.chain import compute_hash
from tracker.audit.models import GENESIS_HASH, AuditEvent
from tracker.audit.services import Actor, append_recorded, head, record_event, verify

ACTOR = Actor(username="tester", role="coordinator")


def _append(session: Session, n: int) -> list[AuditEvent]:
    events = [
        record_event(session, ACTOR, "test.event", "thing", i, new={"i": i, "text": f"v{i}"})
        for i in range(n)
    ]
    append_recorded(session)
    return events


def test_events_chain_from_genesis_and_verify(db_session: Session) -> None:
    start_seq, start_hash = head(db_session)
    events = _append(db_session, 5)
    assert [e.seq for e in events] == list(range(start_seq + 1, start_seq + 6))
    assert events[0].prev_hash == start_hash
    for earlier, later in itertools.pairwise(events):
        assert later.prev_hash == earlier.hash
    if start_seq == 0:
        assert events[0].prev_hash == GENESIS_HASH
    result = verify(db_session)
    assert result.ok, result.problem
    assert result.events == start_seq + 5
    assert result.head == events[-1].hash


def test_stored_values_rehash_to_the_stored_hash(db_session: Session) -> None:
    (event,) = _append(db_session, 1)
    db_session.expire_all()
    stored = db_session.get(AuditEvent, event.seq)
    assert stored is not None
    assert compute_hash(stored.prev_hash, stored) == stored.hash


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET reason = 'rewritten'",
        "DELETE FROM audit_events",
    ],
)
def test_database_refuses_update_and_delete(db_session: Session, statement: str) -> None:
    _append(db_session, 2)
    savepoint = db_session.begin_nested()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        db_session.execute(sa.text(statement))
    savepoint.rollback()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) >= 2


def test_truncate_is_refused(db_session: Session, backend: str) -> None:
    _append(db_session, 1)
    savepoint = db_session.begin_nested()
    # PostgreSQL's trigger refuses it; SQLite has no TRUNCATE at all (DELETE is refused above).
    expected = "append-only" if backend == "postgresql" else "syntax error"
    with pytest.raises(sa.exc.DatabaseError, match=expected):
        db_session.execute(sa.text("TRUNCATE audit_events"))
    savepoint.rollback()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) >= 1


def _tamper(session: Session, backend: str, seq: int, reason: str) -> None:
    """Rewrite an event behind the triggers' back, as an attacker with DDL rights could.
    DDL is transactional on both databases, so the test's rollback restores the triggers."""
    if backend == "sqlite":
        session.execute(sa.text("DROP TRIGGER audit_events_no_update"))
    else:
        session.execute(
            sa.text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
        )
    session.execute(
        sa.text("UPDATE audit_events SET reason = :r WHERE seq = :s"), {"r": reason, "s": seq}
    )


def test_tampered_event_fails_verification_naming_it(
    app: Flask, db_session: Session, backend: str
) -> None:
    events = _append(db_session, 3)
    target = events[1].seq
    _tamper(db_session, backend, target, "quietly changed")
    db_session.expire_all()
    result = verify(db_session)
    assert not result.ok
    assert result.first_bad_seq == target
    assert "altered" in (result.problem or "")

    runner = app.test_cli_runner()
    outcome = runner.invoke(args=["audit", "verify"])
    assert outcome.exit_code == 1
    assert f"event {target}" in outcome.output


def test_cli_verify_passes_on_an_intact_chain(app: Flask, db_session: Session) -> None:
    _append(db_session, 2)
    outcome = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.startswith("OK: ")


def test_cli_export_is_readable_csv_and_audited(app: Flask, db_session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_site(db_session, "S77", '=HYPERLINK("http://x")')
    db_session.commit()
    target = tmp_path / "audit.csv"
    outcome = app.test_cli_runner().invoke(
        args=["audit", "export", "--format", "csv", "-o", str(target)]
    )
    assert outcome.exit_code == 0, outcome.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert rows[-1]["action"] == "audit.export"
    site_rows = [r for r in rows if r["action"] == "site.create" and r["entity_id"] == "S77"]
    assert len(site_rows) == 1
    # The name began with '=': the JSON cell starts with '{', so it is safe and kept as typed.
    assert "=HYPERLINK" in site_rows[0]["new_values"]
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    assert verify(db_session).ok


def _export(session: Session) -> str:
    from tracker.audit.export import AuditCsv

    return "".join(AuditCsv(session))


def test_export_writes_values_as_canonical_json(app: Flask, db_session: Session) -> None:
    """The export writes the stored JSON as it is: keys sorted, text as typed, an absent value
    as an empty cell; a cell that would start a formula is neutralised."""
    actor = Actor(username="exporter", role="admin")
    record_event(
        db_session,
        actor,
        "test.values",
        "thing",
        "T1",
        old=None,
        new={"zeta": 1, "alpha": "Überprüfung", "mid": {"b": 2, "a": [3, 1]}},
        reason="-1 as typed",
    )
    db_session.commit()
    row = next(
        r for r in csv.DictReader(io.StringIO(_export(db_session))) if r["action"] == "test.values"
    )
    assert row["new_values"] == (
        '{"alpha": "Überprüfung", "mid": {"a": [3, 1], "b": 2}, "zeta": 1}'
    )
    assert row["old_values"] == ""
    assert row["reason"] == "'-1 as typed"


def test_copy_and_the_csv_module_write_the_same_export(
    app: Flask, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL writes the export with COPY; SQLite through the csv module. Both must give
    the same bytes for awkward values: quotes, commas, line breaks, formula starts, empty and
    missing text, JSON scalars, non-ASCII, and a time on a whole second."""
    from datetime import UTC, datetime, timedelta

    from tracker import clock
    from tracker.audit.export import AuditCsv

    actor = Actor(username="=exporter", role="admin", ip_address="@127.0.0.1")
    values = [
        ({"a": "x"}, {"a": 'y, "quoted"\nnext line'}, 'reason, with "quotes"\r\nand lines'),
        (None, {"n": -5, "list": ["=1+2", None, True]}, ""),
        ({"k": "\tTab"}, None, "+plus"),
        (None, None, None),
        ({"ü": "ßé"}, {"emoji": "✓"}, "=SUM(A1)"),
    ]
    whole = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    for index, (old, new, reason) in enumerate(values):
        if index == 3:
            monkeypatch.setattr(clock, "now", lambda: whole)
        record_event(
            db_session, actor, "test.awkward", "thing", f"-T{index}", old=old, new=new,
            reason=reason,
        )  # fmt: skip
    db_session.commit()
    export = AuditCsv(db_session)
    text = "".join(export)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert export.events == len(rows) == db_session.scalar(sa.select(sa.func.count(AuditEvent.seq)))
    awkward = [r for r in rows if r["action"] == "test.awkward"]
    assert [r["reason"] for r in awkward] == [
        "reason, with \"quotes\"\r\nand lines", "", "'+plus", "", "'=SUM(A1)",
    ]  # fmt: skip
    assert awkward[0]["actor"] == "'=exporter" and awkward[0]["entity_id"] == "'-T0"
    assert awkward[3]["occurred_at"] == whole.isoformat()
    if db_session.get_bind().dialect.name == "postgresql":
        through_python = "".join(export._rows())
        assert text == through_python
