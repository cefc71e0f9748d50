"""Appending to the audit trail. Every change of data calls ``record_event`` in its own
transaction, so the change and its history commit or roll back together."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

from tracker.audit.chain import (
    VerificationResult,
    compute_hash,
    content_before_seq,
    jsonable,
    verify_chain,
)
from tracker.audit.checkpoints import CheckpointStore, check_against
from tracker.audit.models import GENESIS_HASH, AuditEvent
from tracker.db import READS_ONLY, ReadOnlySessionWrite, canonical_json, utcnow

lock_log = logging.getLogger("tracker.audit.lock")
# Any constant will do; it only has to be the same in every process that appends.
AUDIT_APPEND_LOCK_KEY = 0x747261636B6572  # "tracker"
VERIFY_BATCH = 2000
# Keys of Session.info and of app.extensions.
APPENDED_HEAD = "tracker.audit_head"
PENDING = "tracker.audit_pending"
LOCK_TIMES = "tracker.audit_lock_times"
CHECKPOINT_REASON = "tracker.checkpoint_reason"
CHECKPOINTS = "tracker.checkpoints"
# Every export and report is checkpointed: what left the building can be held against it.
CHECKPOINTED_ACTIONS = {
    "audit.export": "export",
    "report.export": "report",
    "data.export": "export",
}


@dataclass(frozen=True)
class Actor:
    """Who does something: a signed-in user, or the system/CLI acting under a name."""

    username: str
    role: str | None
    user_id: int | None = None
    ip_address: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(username=name, role="system")


def head(db: Session) -> tuple[int, str]:
    """The last sequence number and hash (0 and the genesis hash for an empty trail)."""
    row = db.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS_HASH) if row is None else (row.seq, row.hash)


def record_event(
    db: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: Any = None,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Record one event in the caller's unit of work; it commits or rolls back with it.

    The event joins the chain as the last step before the commit (``append_recorded``): the
    lock that serialises appends is then held for the lock, the head, the insert and the
    commit only, not for the rest of the request. Its sequence number and hashes are given
    there; its time is when it was recorded, the time its change carries. Inside a savepoint
    it is appended at once, so that rolling the savepoint back takes it too; a read of the
    audit trail in the same unit of work appends what is waiting first, so the trail read is
    the trail that will commit."""
    if db.info.get(READS_ONLY):
        # Refused here, where the mistake is, not at the commit that would have flushed it.
        raise ReadOnlySessionWrite(
            "a read-only unit of work tried to record an audit event; use write_unit(session)"
        )
    event = AuditEvent(
        occurred_at=utcnow(),
        actor_id=actor.user_id,
        actor=actor.username,
        role=actor.role,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        old_values=jsonable(old) if old is not None else None,
        new_values=jsonable(new) if new is not None else None,
        reason=reason,
        ip_address=actor.ip_address,
    )
    db.info.setdefault(PENDING, []).append(event)
    if db.in_nested_transaction():
        append_recorded(db)
    if action in CHECKPOINTED_ACTIONS:
        request_checkpoint(db, CHECKPOINTED_ACTIONS[action])
    return event


def append_recorded(db: Session) -> None:
    """Chain the events this unit of work recorded onto the head, in the order recorded (at
    commit; or now, for a caller that needs their numbers before it commits).

    Everything else is flushed first. On PostgreSQL each event is one call of the database's
    ``audit_append`` (migration 0ccef3491fd0): it takes the transaction-scoped advisory lock
    that serialises appends, reads the head, hashes and inserts, so that from the lock to its
    release at commit the request sends nothing but those calls and the commit. The content
    to hash is made here before the first call. On SQLite the transaction holds the write
    lock from its BEGIN IMMEDIATE: the head is read and the events inserted here."""
    pending: list[AuditEvent] = db.info.pop(PENDING, [])
    if not pending:
        return
    db.flush()
    if db.get_bind().dialect.name == "postgresql":
        _append_in_the_database(db, pending)
    else:
        last_seq, last_hash = head(db)
        for event in pending:
            last_seq += 1
            event.seq = last_seq
            event.prev_hash = last_hash
            event.hash = last_hash = compute_hash(last_hash, event)
        db.add_all(pending)
        db.flush()
    # The head this transaction will commit: the checkpoint listener signs it after commit.
    db.info[APPENDED_HEAD] = (pending[-1].seq, pending[-1].hash)


APPEND = sa.text(
    "SELECT seq, prev_hash, hash, lock_wait FROM audit_append(CAST(:lock_key AS bigint), "
    "CAST(:content AS text), CAST(:occurred_at AS timestamptz), CAST(:actor_id AS integer), "
    "CAST(:actor AS varchar), CAST(:role AS varchar), CAST(:action AS varchar), "
    "CAST(:entity_type AS varchar), CAST(:entity_id AS varchar), CAST(:old_values AS json), "
    "CAST(:new_values AS json), CAST(:reason AS text), CAST(:ip_address AS varchar))"
)


def _append_in_the_database(db: Session, pending: list[AuditEvent]) -> None:
    calls = [
        {
            "lock_key": AUDIT_APPEND_LOCK_KEY,
            "content": content_before_seq(event),
            "occurred_at": event.occurred_at,
            "actor_id": event.actor_id,
            "actor": event.actor,
            "role": event.role,
            "action": event.action,
            "entity_type": event.entity_type,
            "entity_id": event.entity_id,
            # Stored as the ORM would store them (tracker.db.canonical_json).
            "old_values": None if event.old_values is None else canonical_json(event.old_values),
            "new_values": None if event.new_values is None else canonical_json(event.new_values),
            "reason": event.reason,
            "ip_address": event.ip_address,
        }
        for event in pending
    ]
    connection = db.connection()  # Core: nothing of the ORM runs under the lock
    called = time.perf_counter()
    waited = 0.0
    for event, call in zip(pending, calls, strict=True):
        row = connection.execute(APPEND, call).one()
        event.seq, event.prev_hash, event.hash = row.seq, row.prev_hash, row.hash
        waited += row.lock_wait
    if LOCK_TIMES not in db.info:  # the first append of the transaction took the lock
        db.info[LOCK_TIMES] = (called, called + waited, time.perf_counter())


def _reads_audit_trail(statement: Any) -> bool:
    if isinstance(statement, sa.TextClause):
        return AuditEvent.__tablename__ in statement.text
    return any(
        getattr(table, "name", None) == AuditEvent.__tablename__
        for table in find_tables(statement, check_columns=True, include_joins=True)
    )


@sa.event.listens_for(Session, "do_orm_execute")
def _append_before_reading_the_trail(state: ORMExecuteState) -> None:
    db = state.session
    if db.info.get(PENDING) and _reads_audit_trail(state.statement):
        append_recorded(db)


@sa.event.listens_for(Session, "before_commit")
def _append_before_commit(db: Session) -> None:
    append_recorded(db)


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_events_not_committed(db: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        db.info.pop(PENDING, None)


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The old and new values of the fields that differ."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def verify(
    db: Session, store: CheckpointStore | None = None, *, reached_only: bool = False
) -> VerificationResult:
    """Verify the whole trail, streaming it in sequence order, and hold it against every
    signed checkpoint in ``store`` (with ``reached_only``, those it reaches: a backup is
    behind the newest checkpoints by nature). A trail found sound is marked verified up to
    its head (``CheckpointStore.mark_verified``), where the next report starts."""
    result = _verify_after(db, store, 0, GENESIS_HASH, reached_only=reached_only)
    if result.ok and store is not None and not reached_only:
        store.mark_verified(result.events, result.head, whole_chain=True)
    return result


def verify_since_mark(db: Session, store: CheckpointStore | None) -> VerificationResult:
    """The verification reports and checkpoints state: the events after the head last
    verified (the signed mark), chained onto it and held against the checkpoints written
    past it and the newest one. Its cost is that of the events since, not of the trail.

    Without a mark, or with one the trail no longer holds (a restore, or a rewrite of the
    events it covers), the whole trail is verified, as ``tracker audit verify`` does, which
    names what is wrong."""
    mark = store.verified() if store is not None else None
    if store is None or mark is None:
        return verify(db, store)
    marked_hash = db.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == mark.seq))
    if marked_hash != mark.head:
        return verify(db, store)
    result = _verify_after(db, store, mark.seq, mark.head)
    if result.ok:
        result = _held_against_newest(db, store, result)
    if result.ok:
        store.mark_verified(result.events, result.head)
    return replace(result, verified_from=mark.seq)


def _held_against_newest(
    db: Session, store: CheckpointStore, result: VerificationResult
) -> VerificationResult:
    """The newest checkpoint written, held against the event it signed (it may be older than
    the mark: a checkpoint is written after its commit, sometimes after a later mark)."""
    newest = store.latest()
    if newest is None or newest.seq > result.events:
        return result  # none, or one past the head: _verify_after has said so
    signed = db.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == newest.seq))
    contradiction = check_against([newest], {newest.seq: signed or ""}, result.events)
    if contradiction is None:
        return result
    first_bad, problem = contradiction
    return replace(result, ok=False, first_bad_seq=first_bad, problem=problem)


def _verify_after(
    db: Session,
    store: CheckpointStore | None,
    after_seq: int,
    after_hash: str,
    *,
    reached_only: bool = False,
) -> VerificationResult:
    """Verify the events after ``after_seq`` (whose hash is ``after_hash``) and hold them
    against the signed checkpoints past it."""
    checkpoints, unreadable = store.load(after_seq) if store is not None else ([], [])
    wanted = {checkpoint.seq for checkpoint in checkpoints}
    hashes: dict[int, str] = {}

    def noting_hashes(rows: Iterable[Any]) -> Iterator[Any]:
        for row in rows:
            if row.seq in wanted:
                hashes[row.seq] = row.hash
            yield row

    # Plain rows, not ORM objects: nothing accumulates in the identity map on a long trail.
    table = AuditEvent.__table__
    query = (
        sa.select(table)
        .where(table.c.seq > after_seq)
        .order_by(table.c.seq)
        .execution_options(yield_per=VERIFY_BATCH)
    )
    with db.execute(query) as rows:  # closes the server-side cursor on an early stop
        result = verify_chain(noting_hashes(rows), after_seq, after_hash)
    result = replace(result, checkpoints=len(checkpoints))
    if not result.ok:
        return result
    if unreadable:
        first = unreadable[0]
        return replace(result, ok=False, problem=f"checkpoint {first.name}: {first.problem}")
    if reached_only:
        checkpoints = [c for c in checkpoints if c.seq <= result.events]
    contradiction = check_against(checkpoints, hashes, result.events)
    if contradiction is not None:
        first_bad, problem = contradiction
        return replace(result, ok=False, first_bad_seq=first_bad, problem=problem)
    return result


def checkpoint_store() -> CheckpointStore | None:
    """The app's checkpoint store (None outside an app)."""
    return current_app.extensions.get(CHECKPOINTS) if has_app_context() else None


def request_checkpoint(db: Session, reason: str) -> None:
    """Ask for a checkpoint when this session's transaction commits (an export, a report)."""
    db.info[CHECKPOINT_REASON] = reason


@sa.event.listens_for(Session, "after_commit")
def _checkpoint_committed_head(db: Session) -> None:
    _note_lock_held(db)
    head_written = db.info.pop(APPENDED_HEAD, None)
    reason = db.info.pop(CHECKPOINT_REASON, None)
    store = checkpoint_store()
    if head_written is not None and store is not None:
        seq, head_hash = head_written
        store.after_commit(seq, head_hash, reason)


@sa.event.listens_for(Session, "after_rollback")
def _forget_rolled_back_head(db: Session) -> None:
    _note_lock_held(db)
    db.info.pop(APPENDED_HEAD, None)
    db.info.pop(CHECKPOINT_REASON, None)


def _note_lock_held(db: Session) -> None:
    """How long this transaction waited for the chain's lock, and held it: appending (the
    head, the insert) and committing, to the commit or rollback that released it. At DEBUG on
    the ``tracker.audit.lock`` logger: what the write-throughput benchmark reads."""
    times = db.info.pop(LOCK_TIMES, None)
    if times is not None and lock_log.isEnabledFor(logging.DEBUG):
        asked, locked, appended = times
        released = time.perf_counter()
        lock_log.debug(
            "waited=%.6f held=%.6f appending=%.6f committing=%.6f",
            locked - asked,
            released - locked,
            appended - locked,
            released - appended,
        )
