"""Reports verify the audit trail from the last verified head (issue 19): a signed mark beside
the checkpoints says how far the chain was found sound; a report reads only the events after
it, chains them onto it and holds them against the checkpoints. What the mark covers is still
the full verification's to re-check, and a mark the chain no longer holds sends the report
back to the full verification."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Flask

from tests.conftest import login
from tests.factories import make_user
from tracker.audit.chain import compute_hash
from tracker.audit.checkpoints import VERIFIED, CheckpointStore
from tracker.audit.models import AuditEvent
from tracker.audit.services import CHECKPOINTS, verify, verify_since_mark
from tracker.db import get_database


def _store(app: Flask) -> CheckpointStore:
    store: CheckpointStore = app.extensions[CHECKPOINTS]
    return store


def _more_activity(app: Flask, users: int = 3) -> None:
    with app.app_context(), get_database(app).session_scope() as session:
        for _ in range(users):
            make_user(session, "therapist", "S01")


def _events_read(app: Flask, check: Any) -> tuple[Any, int]:
    """``check``'s result and how many audit events it read."""
    read = 0
    engine = get_database(app).engine

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal read
        if "FROM audit_events" in statement and "ORDER BY audit_events.seq" in statement:
            read += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with app.app_context(), get_database(app).session_scope() as session:
            result = check(session)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return result, read


def _verify_since_mark(app: Flask) -> Any:
    with app.app_context(), get_database(app).session_scope() as session:
        return verify_since_mark(session, _store(app))


def _sql(app: Flask, *statements: str) -> None:
    with get_database(app).engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_the_full_verification_marks_the_head_and_a_report_reads_only_what_came_after(
    study: Flask,
) -> None:
    store = _store(study)
    with study.app_context(), get_database(study).session_scope() as session:
        full = verify(session, store)
    assert full.ok
    mark = store.verified()
    assert mark is not None and (mark.seq, mark.head) == (full.events, full.head)

    _more_activity(study)
    result = _verify_since_mark(study)
    assert result.ok, result.problem
    assert result.verified_from == full.events
    assert result.events == full.events + 3  # three users created, an event each
    mark = store.verified()
    assert mark is not None and mark.seq == result.events  # the mark moved to the new head

    # The events read: only those after the mark (the stream's query binds the mark's seq).
    seen: list[Any] = []
    engine = get_database(study).engine

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM audit_events" in statement and "audit_events.seq >" in statement:
            seen.append(parameters)

    _more_activity(study, 1)
    sa.event.listen(engine, "before_cursor_execute", keep)
    try:
        again = _verify_since_mark(study)
    finally:
        sa.event.remove(engine, "before_cursor_execute", keep)
    assert again.ok and again.verified_from == result.events
    assert seen and result.events in tuple(seen[0])


def test_without_a_mark_the_report_verifies_the_whole_chain(study: Flask) -> None:
    store = _store(study)
    store.forget_verified()
    result = _verify_since_mark(study)
    assert result.ok and result.verified_from == 0
    assert store.verified() is not None  # and marks it for the next one


def test_an_event_altered_after_the_mark_is_named_by_the_next_report(study: Flask) -> None:
    store = _store(study)
    assert _verify_since_mark(study).ok
    marked = store.verified()
    assert marked is not None
    _more_activity(study, 5)
    _sql(
        study,
        "DROP TRIGGER audit_events_no_update",
        f"UPDATE audit_events SET reason = 'edited' WHERE seq = {marked.seq + 2}",
    )
    result = _verify_since_mark(study)
    assert not result.ok
    assert result.first_bad_seq == marked.seq + 2
    assert "altered" in (result.problem or "")
    assert store.verified() == marked  # a failed verification moves nothing


def test_a_chain_rewritten_under_the_mark_sends_the_report_to_the_full_verification(
    study: Flask,
) -> None:
    assert _verify_since_mark(study).ok
    assert study.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    _sql(study, "DROP TRIGGER audit_events_no_update")
    with get_database(study).session_scope() as session:
        rows = list(session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))
        rows[4].reason = "rewritten by an insider"
        prev = rows[3].hash
        for row in rows[4:]:
            row.prev_hash = prev
            row.hash = compute_hash(prev, row)
            prev = row.hash
    result = _verify_since_mark(study)
    assert not result.ok
    assert result.verified_from == 0  # the mark no longer holds: the whole chain was read
    assert "the head no longer matches" in (result.problem or "")


def test_a_forged_mark_is_not_believed(study: Flask) -> None:
    store = _store(study)
    assert _verify_since_mark(study).ok
    path = store.directory / VERIFIED
    fields = json.loads(path.read_text())
    fields["seq"] += 100
    path.write_text(json.dumps(fields))
    assert store.verified() is None
    result = _verify_since_mark(study)
    assert result.ok and result.verified_from == 0


def test_a_tail_cut_below_the_newest_checkpoint_is_found_after_the_mark(study: Flask) -> None:
    store = _store(study)
    assert _verify_since_mark(study).ok
    _more_activity(study, 4)
    assert study.test_cli_runner().invoke(args=["audit", "checkpoint"]).exit_code == 0
    newest = store.latest()
    assert newest is not None
    _sql(
        study,
        "DROP TRIGGER audit_events_no_delete",
        f"DELETE FROM audit_events WHERE seq > {newest.seq - 2}",
    )
    result = _verify_since_mark(study)
    assert not result.ok
    assert f"events {newest.seq - 1} to {newest.seq} are missing" in (result.problem or "")


def test_the_compliance_report_states_the_incremental_verification(study: Flask) -> None:
    store = _store(study)
    with study.app_context(), get_database(study).session_scope() as session:
        auditor = make_user(session, "auditor", None)
    client = study.test_client()
    assert login(client, auditor.username).status_code == 302
    first = client.get("/reports/compliance").get_data(as_text=True)
    assert "verifies" in first
    marked = store.verified()
    assert marked is not None
    _more_activity(study, 2)
    _sql(
        study,
        "DROP TRIGGER audit_events_no_update",
        f"UPDATE audit_events SET actor = 'someone else' WHERE seq = {marked.seq + 1}",
    )
    _more_activity(study, 1)
    page = client.get("/reports/compliance").get_data(as_text=True)
    assert "does not verify" in page
    assert f"event {marked.seq + 1}: content does not match its hash" in page
